import { withClient, type Config } from '../../src/index.js';
import type { WriterStats } from '../fixtures/pos-writer.js';

/** What the demo's own SQL found of the writer's acknowledged writes on the shards. */
export interface WriterProof {
  /** every live order and theme on exactly one shard with its items, no deleted one anywhere */
  exact: boolean;
  transactions: number;
  orders: { acknowledged: number; found: number; onTwoShards: number };
  items: { acknowledged: number; found: number };
  themes: { acknowledged: number; found: number; onTwoShards: number };
  deleted: { acknowledged: number; found: number };
}

/**
 * Counts the writer's rows on every shard with SQL of its own (not shardctl's verify): each order and
 * theme the writer saw committed and did not delete must be on exactly one shard, with the items
 * committed with it, and no order or theme it deleted may be on any shard.
 */
export async function proveWrites(config: Config, stats: WriterStats): Promise<WriterProof> {
  const orders = [...stats.liveOrders.keys()];
  const themes = [...stats.liveThemes];
  const deletedOrders = stats.deletedOrders;
  const deletedThemes = stats.deletedThemes;
  const seen = { orders: new Map<string, number>(), themes: new Map<string, number>() };
  let items = 0;
  let deleted = 0;
  for (const shard of config.shards) {
    await withClient({ label: `shard ${shard.id}`, url: shard.primary }, async (c) => {
      const ids = async (table: 'orders' | 'themes', list: string[]) =>
        (await c.query<{ id: string }>(`SELECT id::text AS id FROM ${table} WHERE id = ANY($1::bigint[])`, [list])).rows.map((r) => r.id);
      for (const id of await ids('orders', orders)) seen.orders.set(id, (seen.orders.get(id) ?? 0) + 1);
      for (const id of await ids('themes', themes)) seen.themes.set(id, (seen.themes.get(id) ?? 0) + 1);
      items += Number((await c.query(`SELECT count(*) AS n FROM order_items WHERE order_id = ANY($1::bigint[])`, [orders])).rows[0].n);
      deleted += (await ids('orders', deletedOrders)).length + (await ids('themes', deletedThemes)).length;
    });
  }
  const twice = (m: Map<string, number>) => [...m.values()].filter((n) => n > 1).length;
  const proof: WriterProof = {
    exact: false,
    transactions: stats.commits,
    orders: { acknowledged: orders.length, found: seen.orders.size, onTwoShards: twice(seen.orders) },
    items: { acknowledged: [...stats.liveOrders.values()].reduce((n, o) => n + o.items, 0), found: items },
    themes: { acknowledged: themes.length, found: seen.themes.size, onTwoShards: twice(seen.themes) },
    deleted: { acknowledged: deletedOrders.length + deletedThemes.length, found: deleted },
  };
  proof.exact =
    proof.orders.found === proof.orders.acknowledged &&
    proof.themes.found === proof.themes.acknowledged &&
    proof.orders.onTwoShards + proof.themes.onTwoShards === 0 &&
    proof.items.found === proof.items.acknowledged &&
    deleted === 0;
  return proof;
}
