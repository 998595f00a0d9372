import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { stageFleet, type Stage } from '../harness/demo/stage.js';
import type { Config } from '../src/config/types.js';
import { topologyRouter } from '../src/routing/router.js';
import { runCli, runCliAsync } from './helpers/cli.js';
import { startWatched } from './helpers/watched.js';
import { assertExact } from './helpers/exact.js';
import { sql } from './helpers/fleet.js';

const T0 = Date.now();
const mark = (what: string) => process.env.ROLLBACK_TIMES && console.error(`${((Date.now() - T0) / 1000).toFixed(1)}s ${what}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const allSlots = async (config: Config) =>
  (await Promise.all([config.source, ...config.shards.map((s) => s.primary)].map((u) => sql(u, 'SELECT slot_name FROM pg_replication_slots')))).flat();

const big = () => randomBytes(3000).toString('base64'); // out of line (TOAST) and incompressible

/**
 * An application writing to the shards after cutover, one connection per shard: orders with items
 * (a `via` table) and themes, status-only updates (the TOASTed note unchanged), orders moved to
 * another restaurant of the same shard, deletes, and a new restaurant per shard with a theme (a unit
 * that did not exist at cutover). Writes refused by the rollback fence are counted and retried.
 */
function shardWriter(config: Config) {
  let running = true;
  const stats = { commits: 0, refused: 0 };
  const router = topologyRouter(config);
  const work = async (shard: Config['shards'][number], n: number) => {
    const c = new pg.Client({ connectionString: shard.primary });
    c.on('error', () => undefined);
    await c.connect();
    let seed = n + 3;
    const rand = (k: number) => ((seed = (seed * 48271) % 2147483647), seed % k);
    try {
      let id = 900_000 + n;
      while (router.shardFor(String(id)) !== shard.id) id += 10;
      await c.query(
        `INSERT INTO restaurants SELECT $1::bigint, name || ' II', slug || '-' || $1::text, currency_code, timezone, address, latitude, longitude, opened_on, is_active, tags, logo,
                gen_random_uuid(), created_at, deleted_at FROM restaurants WHERE id = (SELECT min(id) FROM restaurants)`,
        [id],
      );
      await c.query(`INSERT INTO themes (restaurant_id, name, is_default, colors, font, updated_at) VALUES ($1, 'new', true, '{}', 'f', now())`, [id]);
      // orders go to restaurants with a product of their own (an item naming another unit's product would cross units)
      const local = (
        await c.query(`SELECT r.id::text AS id, min(p.id)::text AS product FROM restaurants r JOIN products p ON p.restaurant_id = r.id GROUP BY r.id`)
      ).rows;
      const mine: { order: string; theme: string }[] = [];
      while (running) {
        try {
          await c.query('BEGIN');
          const op = rand(10);
          const r = local[rand(local.length)]!;
          if (op < 5 || mine.length < 3) {
            const o = await c.query(
              `INSERT INTO orders (restaurant_id, order_number, status, channel, currency_code, subtotal, tax, total, guests, notes, placed_at, business_date, public_id)
               VALUES ($1, $2, 'open', 'app', 'USD', 10.50, 1.05, 11.55, 2, $3, now(), current_date, gen_random_uuid()) RETURNING id::text`,
              [r.id, rand(100000), big()],
            );
            for (let i = 0; i < 2; i++) {
              await c.query(`INSERT INTO order_items (order_id, product_id, quantity, unit_price, line_total, voided, note) VALUES ($1, $2, 1, 5.25, 5.25, false, $3)`, [o.rows[0].id, r.product, i ? big() : 'plain']);
            }
            const t = await c.query(`INSERT INTO themes (restaurant_id, name, is_default, colors, font, updated_at) VALUES ($1, 'live', false, '{}', 'f', now()) RETURNING id::text`, [r.id]);
            mine.push({ order: o.rows[0].id, theme: t.rows[0].id });
          } else if (op < 7) {
            const m = mine[rand(mine.length)]!;
            await c.query(`UPDATE orders SET status = 'paid', closed_at = now() WHERE id = $1`, [m.order]);
            await c.query('UPDATE order_items SET voided = NOT voided WHERE order_id = $1', [m.order]);
          } else if (op < 8) {
            const m = mine[rand(mine.length)]!;
            await c.query('UPDATE orders SET restaurant_id = $2 WHERE id = $1', [m.order, r.id]);
            await c.query('UPDATE order_items SET product_id = $2 WHERE order_id = $1', [m.order, r.product]);
          } else {
            const m = mine.splice(rand(mine.length), 1)[0]!;
            await c.query('DELETE FROM order_items WHERE order_id = $1', [m.order]);
            await c.query('DELETE FROM orders WHERE id = $1', [m.order]);
            await c.query('DELETE FROM themes WHERE id = $1', [m.theme]);
          }
          await c.query('COMMIT');
          stats.commits++;
          await sleep(20);
        } catch (e) {
          await c.query('ROLLBACK').catch(() => undefined);
          if (['40P01', '40001'].includes((e as { code?: string }).code ?? '')) continue; // deadlock (the fence takes table after table), serialization: retry, as an application does
          if (!/rolled back .* writes to the shards are refused/.test(String(e))) throw e;
          stats.refused++;
          await sleep(20);
        }
      }
    } finally {
      await c.end().catch(() => undefined);
    }
  };
  const all = Promise.all(config.shards.map((s, i) => work(s, i)));
  let failed: unknown;
  all.catch((e) => {
    failed = e;
    running = false;
  });
  return {
    async stop() {
      running = false;
      await all.catch(() => undefined);
      if (failed) throw failed;
      return stats;
    },
  };
}

// a follower that never exits must fail the test, not hang the suite
describe('rollback after cutover: a reverse stream from every shard to the monolith', { timeout: 300_000 }, () => {
  let stage: Stage;
  let cfg: string;
  before(async () => {
    stage = await stageFleet({ kind: 'pos', shards: 2, scale: 0.005, fleet: { settings: { wal_level: 'logical' } } });
    cfg = stage.configPath;
  });
  after(() => stage?.stop());

  const cutoverReverse = async () => {
    const f = startWatched(['migrate', '--follow', '--config', cfg], 'follow-start', 1);
    await f.started();
    mark('following');
    const cut = runCli(['cutover', '--reverse', '--max-lag', '10m', '--timeout', '60s', '--config', cfg]);
    assert.equal(cut.status, 0, cut.stdout + cut.stderr);
    assert.match(cut.stdout, /rollback window open: reverse slots on s\d, s\d/);
    assert.equal((await f.exit).status, 0);
    mark('cut over');
  };
  const follower = () => startWatched(['rollback', '--follow', '--config', cfg], 'reverse-start', stage.config.shards.length);

  it('writes on the shards under load, the reverse follower SIGKILLed, then rollback: the monolith equals the shards and takes writes', async () => {
    const { config } = stage;
    await cutoverReverse();
    // reference rows: the same change on every shard (the router's way); the monolith takes one copy
    for (const s of config.shards) await sql(s.primary, `UPDATE currencies SET usd_rate = usd_rate + 1 WHERE code = 'USD'`);
    const writer = shardWriter(config);
    try {
      let seed = 11;
      const random = (n: number) => ((seed = (seed * 48271) % 2147483647), seed % n);
      for (let i = 0; i < 3; i++) {
        const f = follower();
        const child = await f.started();
        await sleep(200 + random(500));
        if (i === 2) {
          // a follower that does not apply: rollback times out, lifts the shard fence, exit 3
          child.kill('SIGSTOP');
          try {
            const r = await runCliAsync(['rollback', '--timeout', '3s', '--config', cfg]);
            assert.equal(r.status, 3, r.stdout + r.stderr);
            // (under a heavy load the fence itself may be what times out: the same promise)
            assert.match(r.stderr, /(did not catch up in time|could not fence the shards within 3s).*the shard fence is lifted/);
            await sql(config.shards[0]!.primary, `UPDATE restaurants SET name = name WHERE id = (SELECT min(id) FROM restaurants)`);
          } finally {
            child.kill('SIGCONT');
            child.kill('SIGKILL');
          }
        }
        child.kill('SIGKILL');
        assert.equal((await f.exit).status, null);
      }
      mark('timeout path done');
      const last = follower();
      await last.started();
      const rb = await runCliAsync(['rollback', '--timeout', '60s', '--config', cfg]); // the writer runs in this process
      assert.equal(rb.status, 0, rb.stdout + rb.stderr);
      assert.match(rb.stdout, /rolled back: the monolith is the source of truth again.*point the application's routers back at the monolith/s);
      mark(`rolled back\n${rb.stderr}`);
      const stats = await writer.stop();
      assert.ok(stats.commits > 20, JSON.stringify(stats));
      assert.ok(stats.refused > 0, 'the shard fence refused the writes that came during the rollback');
      const end = await last.exit;
      assert.equal(end.status, 0, `the reverse follower exits 0 after rollback: ${end.stderr.slice(-2000)}`);
    } finally {
      await writer.stop().catch(() => undefined);
    }
    await assertExact(config);
    mark('exact');
    const v = runCli(['verify', '--config', cfg]);
    assert.equal(v.status, 0, v.stdout + v.stderr);
    assert.deepEqual(await allSlots(config), [], 'no slot left on the monolith or a shard');
    // the monolith takes writes again, with ids past every id the shards handed out
    await sql(config.source, `UPDATE restaurants SET name = 'back' WHERE id = (SELECT min(id) FROM restaurants)`);
    const [o] = await sql(
      config.source,
      `INSERT INTO orders (restaurant_id, order_number, status, channel, currency_code, subtotal, tax, total, guests, placed_at, business_date, public_id)
       SELECT min(id), 1, 'open', 'app', 'USD', 1, 0, 1, 1, now(), current_date, gen_random_uuid() FROM restaurants RETURNING id::text AS id`,
    );
    assert.ok(o.id);
    await assert.rejects(sql(config.shards[0]!.primary, `UPDATE restaurants SET name = 'late'`), /rolled back .* writes to the shards are refused/);
  });

  it('cutover --finish ends the window: the reverse follower exits 0, no slot is left, the shards stay writable', async () => {
    const { config } = stage;
    await cutoverReverse(); // a fresh online migration after the rollback
    const window = async () => {
      const h = JSON.parse((await runCliAsync(['health', '--json', '--config', cfg])).stdout);
      return h.catalog.checks.find((c: { check: string }) => c.check === 'rollback-window') as { status: string; message: string } | undefined;
    };
    const idle = await window();
    assert.equal(idle?.status, 'warning', JSON.stringify(idle));
    assert.match(idle!.message, /^rollback window open, but the reverse follower is not running on s\d, s\d \(run shardctl rollback --follow\): lag [\d.]+ MB, (\?|[\d.]+ s); the reverse slots retain up to [\d.]+ MB of WAL on a shard$/);
    // no unit moves while every shard streams to the monolith on its own
    const move = runCli(['rebalance', '--apply', '--config', cfg]);
    assert.equal(move.status, 3, move.stdout + move.stderr);
    assert.match(move.stderr, /a rollback window is open \(cutover --reverse\): moving units now could reach the monolith out of order/);
    const f = follower();
    await f.started();
    // the lag in seconds is known from the follower's first commit on (a heartbeat within a second)
    let running = await window();
    for (let i = 0; i < 100 && /MB, \?;/.test(running!.message); i++) {
      await new Promise((r) => setTimeout(r, 200));
      running = await window();
    }
    assert.match(running!.message, /^rollback window open: lag [\d.]+ MB, [\d.]+ s; the reverse slots retain up to [\d.]+ MB of WAL on a shard$/);
    const fin = runCli(['cutover', '--finish', '--config', cfg]);
    assert.equal(fin.status, 0, fin.stdout + fin.stderr);
    assert.match(fin.stdout, /rollback window closed: reverse slot dropped on s\d, s\d/);
    assert.equal((await f.exit).status, 0);
    assert.deepEqual(await allSlots(config), []);
    await sql(config.shards[0]!.primary, `UPDATE restaurants SET name = 'shard' WHERE id = (SELECT min(id) FROM restaurants)`);
    const again = runCli(['rollback', '--config', cfg]);
    assert.equal(again.status, 3);
    assert.match(again.stderr, /there is no rollback window/);
  });
});
