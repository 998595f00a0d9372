import { randomBytes } from 'node:crypto';
import pg from 'pg';

/**
 * An application writing to the POS monolith while it is migrated online: several connections at
 * once, each running small transactions — orders with items, status updates that leave a TOASTed
 * note unchanged, orders and themes moved to another restaurant (a key change: the row, and an
 * order's items, change shard), deletes. Refused writes (the cutover fence) end the writer.
 */
export interface Writer {
  stop(): Promise<WriterStats>;
}

export interface WriterStats {
  commits: number;
  deletedOrders: string[];
  deletedThemes: string[];
  moved: number;
  refused: number;
}

const big = () => randomBytes(4500).toString('base64'); // ~6 kB that does not compress: stored out of line (TOAST)

export function startWriter(url: string, restaurants: number, { workers = 3, pauseMs = 25, seed = 1 } = {}): Writer {
  let running = true;
  const stats: WriterStats = { commits: 0, deletedOrders: [], deletedThemes: [], moved: 0, refused: 0 };
  let rnd = seed;
  const rand = (n: number) => {
    rnd = (rnd * 1103515245 + 12345) % 2147483648;
    return rnd % n;
  };
  const restaurant = () => 1 + rand(restaurants);
  const work = async () => {
    const c = new pg.Client({ connectionString: url });
    c.on('error', () => undefined);
    await c.connect();
    const mine: { order: string; themes: string[] }[] = [];
    try {
      while (running) {
        try {
          await c.query('BEGIN');
          const op = rand(10);
          if (op < 4 || mine.length < 3) {
            const r = restaurant();
            const o = await c.query(
              `INSERT INTO orders (restaurant_id, user_id, order_number, status, channel, currency_code, subtotal, tax, total, guests, notes, placed_at, business_date, public_id)
               VALUES ($1, NULL, $2, 'open', 'app', 'USD', 10.50, 1.05, 11.55, 2, $3, now(), current_date, gen_random_uuid()) RETURNING id::text`,
              [r, rand(100000), big()],
            );
            const p = await c.query('SELECT id FROM products WHERE restaurant_id = $1 LIMIT 1', [r]);
            if (p.rows[0]) {
              for (let i = 0; i < 2; i++) {
                await c.query(
                  `INSERT INTO order_items (order_id, product_id, quantity, unit_price, line_total, voided, note) VALUES ($1, $2, 1, 5.25, 5.25, false, $3)`,
                  [o.rows[0].id, p.rows[0].id, i ? big() : 'plain'],
                );
              }
            }
            const t = await c.query(
              `INSERT INTO themes (restaurant_id, name, is_default, colors, font, custom_css, updated_at) VALUES ($1, 'live', false, '{"a": 1}', 'f', $2, now()) RETURNING id::text`,
              [r, big()],
            );
            mine.push({ order: o.rows[0].id, themes: [t.rows[0].id] });
          } else if (op < 6) {
            // only the status changes: the TOASTed note is sent as 'unchanged'
            const m = mine[rand(mine.length)]!;
            await c.query(`UPDATE orders SET status = 'paid', closed_at = now() WHERE id = $1`, [m.order]);
            await c.query(`UPDATE order_items SET voided = NOT voided WHERE order_id = $1`, [m.order]);
          } else if (op < 8) {
            // a key change: the order (with its items) and a theme move to another restaurant, maybe another shard
            const m = mine[rand(mine.length)]!;
            const r = restaurant();
            await c.query('UPDATE orders SET restaurant_id = $2 WHERE id = $1', [m.order, r]);
            // items name the new restaurant's products (a product of another tenant would cross shards)
            await c.query('UPDATE order_items SET product_id = (SELECT min(id) FROM products WHERE restaurant_id = $2) WHERE order_id = $1', [m.order, r]);
            await c.query('UPDATE themes SET restaurant_id = $2 WHERE id = ANY($1::bigint[])', [m.themes, r]);
            stats.moved++;
          } else {
            const m = mine.splice(rand(mine.length), 1)[0]!;
            await c.query('DELETE FROM order_items WHERE order_id = $1', [m.order]);
            await c.query('DELETE FROM orders WHERE id = $1', [m.order]);
            await c.query('DELETE FROM themes WHERE id = ANY($1::bigint[])', [m.themes]);
            stats.deletedOrders.push(m.order);
            stats.deletedThemes.push(...m.themes);
          }
          await c.query('COMMIT');
          stats.commits++;
          await new Promise((r) => setTimeout(r, pauseMs)); // a steady load the follower can keep up with on a busy machine
        } catch (e) {
          await c.query('ROLLBACK').catch(() => undefined);
          if (/shardctl: table .* cut over/.test(String(e))) {
            stats.refused++;
            await new Promise((r) => setTimeout(r, 20));
          } else if (!['40P01', '40001'].includes((e as { code?: string }).code ?? '')) throw e; // deadlock, serialization: retry, as an application does
        }
      }
    } finally {
      await c.end().catch(() => undefined);
    }
  };
  let failed: unknown;
  const all = Promise.all(
    Array.from({ length: workers }, () =>
      work().catch((e) => {
        failed ??= e;
        running = false;
      }),
    ),
  );
  return {
    async stop() {
      running = false;
      await all;
      if (failed) throw failed;
      return stats;
    },
  };
}
