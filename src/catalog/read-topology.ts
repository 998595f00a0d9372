import type pg from 'pg';
import type { CellMapping, ShardConfig, Strategy } from '../config/types.js';
import { withTransaction } from '../db/connect.js';
import { readHeldRoutes, type HeldRoute } from './held-routes.js';

/** The routing topology as the catalog holds it, at one version. */
export interface CatalogTopology {
  readonly version: number;
  readonly strategy: Strategy;
  /** in bucket order; URLs are redacted (the catalog never holds a password) */
  readonly shards: readonly ShardConfig[];
  /**
   * Units whose rows are still on another shard than the topology gives them (their move has not
   * flipped yet): they route to `shard` until then. Routers consult these before the strategy.
   */
  readonly held: ReadonlyMap<string, HeldRoute>;
}

/** Why a catalog cannot route yet; the caller decides whether to wait or fail. */
export class NoTopologyError extends Error {}

/**
 * Reads the whole topology in one read-only REPEATABLE READ transaction: every row comes from the
 * same snapshot as the version, so a topology being rewritten concurrently is seen whole or not at all.
 */
export async function readTopology(c: pg.ClientBase): Promise<CatalogTopology> {
  return withTransaction(
    c,
    async () => {
      const present = await c.query(`SELECT to_regclass('shardctl.topology_version') IS NOT NULL AS ok`);
      if (!present.rows[0].ok) throw new NoTopologyError('the catalog has no topology tables (no shardctl run has used it yet)');
      const v = await c.query(`SELECT version FROM shardctl.topology_version`);
      const st = await c.query(`SELECT kind, tenant_key, index_resolution, shard_resolution, default_shard FROM shardctl.strategy`);
      const shards = await c.query(`SELECT id, primary_url, replica_urls FROM shardctl.shards ORDER BY position`);
      const s = st.rows[0];
      if (!s || shards.rows.length === 0) throw new NoTopologyError('the catalog holds no topology yet (run migrate, rebalance --apply or add-shard once)');
      let strategy: Strategy;
      if (s.kind === 'jump') {
        const pins = await c.query(`SELECT tenant, shard FROM shardctl.pins ORDER BY tenant`);
        strategy = { kind: 'jump', key: s.tenant_key, pins: Object.fromEntries(pins.rows.map((p) => [p.tenant, p.shard])) };
      } else {
        const m = await c.query(`SELECT cell, shard, region, capacity_status FROM shardctl.cell_mapping ORDER BY cell`);
        strategy = {
          kind: 'h3',
          indexResolution: s.index_resolution,
          shardResolution: s.shard_resolution,
          defaultShard: s.default_shard,
          mapping: m.rows.map(
            (r): CellMapping => ({ cell: r.cell, shard: r.shard, ...(r.region === null ? {} : { region: r.region }), ...(r.capacity_status === null ? {} : { capacityStatus: r.capacity_status }) }),
          ),
        };
      }
      return {
        version: Number(v.rows[0].version),
        strategy,
        shards: shards.rows.map((r) => ({ id: r.id, primary: r.primary_url, replicas: r.replica_urls })),
        held: await readHeldRoutes(c),
      };
    },
    { isolation: 'REPEATABLE READ', readOnly: true },
  );
}
