import type pg from 'pg';
import type { Config } from '../config/types.js';
import { redactUrl } from '../redact.js';
import { withTransaction } from '../db/connect.js';
import { syncHeldRoutes } from './held-routes.js';

/** A unit with rows on one shard and no placement. */
export interface UnplacedFound {
  readonly unit: string;
  readonly shard: string;
  readonly rows: number;
  readonly bytes: number;
}

/**
 * Records the topology a mutating run uses (strategy, shards in order with their servers, pins, the
 * H3 mapping) in the catalog, where routers following the catalog pick it up. Connection strings
 * are stored redacted. Only rows that differ are written, all in one transaction, so the topology
 * version moves (and routers are notified) once, and only when something changed. In the same
 * transaction every placed unit that this topology routes away from its placement gets a held route
 * (held-routes.ts): recording a topology moves no unit's route; each move's flip does. `unplaced`:
 * units found on the shards without a placement (created there after migrate, unit-copy/unplaced.ts),
 * placed where their rows are first, so they are held like any other unit.
 */
export async function syncTopology(c: pg.ClientBase, config: Config, unplaced: readonly UnplacedFound[] = [], runId?: number): Promise<void> {
  const st = config.strategy;
  await withTransaction(c, async () => {
    const ids = config.shards.map((s) => s.id);
    await c.query('DELETE FROM shardctl.shards WHERE NOT (id = ANY($1::text[]))', [ids]);
    // positions are unique: move changed ones out of the way first so a reordering never collides midway
    await c.query(
      `UPDATE shardctl.shards s SET position = -s.position - 1
         FROM unnest($1::text[]) WITH ORDINALITY AS x(id, n) WHERE s.id = x.id AND s.position <> x.n - 1`,
      [ids],
    );
    for (const [i, s] of config.shards.entries()) {
      await c.query(
        `INSERT INTO shardctl.shards AS t (id, position, primary_url, replica_urls) VALUES ($1, $2, $3, $4)
         ON CONFLICT (id) DO UPDATE SET position = EXCLUDED.position, primary_url = EXCLUDED.primary_url, replica_urls = EXCLUDED.replica_urls
         WHERE (t.position, t.primary_url, t.replica_urls) IS DISTINCT FROM (EXCLUDED.position, EXCLUDED.primary_url, EXCLUDED.replica_urls)`,
        [s.id, i, redactUrl(s.primary), s.replicas.map(redactUrl)],
      );
    }
    await c.query(
      `INSERT INTO shardctl.strategy AS t (kind, tenant_key, index_resolution, shard_resolution, default_shard) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (only_row) DO UPDATE SET kind = EXCLUDED.kind, tenant_key = EXCLUDED.tenant_key, index_resolution = EXCLUDED.index_resolution,
         shard_resolution = EXCLUDED.shard_resolution, default_shard = EXCLUDED.default_shard
       WHERE (t.kind, t.tenant_key, t.index_resolution, t.shard_resolution, t.default_shard)
         IS DISTINCT FROM (EXCLUDED.kind, EXCLUDED.tenant_key, EXCLUDED.index_resolution, EXCLUDED.shard_resolution, EXCLUDED.default_shard)`,
      st.kind === 'jump' ? ['jump', st.key, null, null, null] : ['h3', null, st.indexResolution, st.shardResolution, st.defaultShard],
    );
    const pins = st.kind === 'jump' ? Object.entries(st.pins) : [];
    await c.query('DELETE FROM shardctl.pins WHERE NOT (tenant = ANY($1::text[]))', [pins.map(([t]) => t)]);
    await c.query(
      `INSERT INTO shardctl.pins AS t (tenant, shard) SELECT * FROM unnest($1::text[], $2::text[])
       ON CONFLICT (tenant) DO UPDATE SET shard = EXCLUDED.shard, created_at = now() WHERE t.shard <> EXCLUDED.shard`,
      [pins.map(([t]) => t), pins.map(([, s]) => s)],
    );
    const mapping = st.kind === 'h3' ? st.mapping.map((m) => ({ ...m, cell: m.cell.toLowerCase() })) : [];
    await c.query('DELETE FROM shardctl.cell_mapping WHERE NOT (cell = ANY($1::text[]))', [mapping.map((m) => m.cell)]);
    await c.query(
      `INSERT INTO shardctl.cell_mapping AS t (cell, shard, region, capacity_status)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
       ON CONFLICT (cell) DO UPDATE SET shard = EXCLUDED.shard, region = EXCLUDED.region, capacity_status = EXCLUDED.capacity_status, updated_at = now()
       WHERE (t.shard, t.region, t.capacity_status) IS DISTINCT FROM (EXCLUDED.shard, EXCLUDED.region, EXCLUDED.capacity_status)`,
      [mapping.map((m) => m.cell), mapping.map((m) => m.shard), mapping.map((m) => m.region ?? null), mapping.map((m) => m.capacityStatus ?? null)],
    );
    if (unplaced.length) {
      await c.query(
        `INSERT INTO shardctl.placements (unit, shard, rows, bytes, run_id)
         SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[]) ON CONFLICT (unit) DO NOTHING`,
        [unplaced.map((u) => u.unit), unplaced.map((u) => u.shard), unplaced.map((u) => String(u.rows)), unplaced.map((u) => String(u.bytes)), unplaced.map(() => runId ?? null)],
      );
    }
    await syncHeldRoutes(c, config);
  });
}

/** The shard ids the catalog's recorded topology holds (a shard only previewed by add-shard is not among them). */
export async function recordedShards(c: pg.ClientBase): Promise<Set<string>> {
  return new Set((await c.query<{ id: string }>('SELECT id FROM shardctl.shards')).rows.map((r) => r.id));
}
