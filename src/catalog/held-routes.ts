import type pg from 'pg';
import type { Config } from '../config/types.js';
import { topologyRouter } from '../routing/router.js';

/**
 * Routing follows the data (issue 24). The topology changes before the data does: `add-shard`,
 * `pin`, `mapping set`, `remove-shard` and the start of `rebalance --apply` record a topology under
 * which some placed units route elsewhere than the shard holding their rows. Each such unit gets a
 * held route: it keeps routing to its placement until its own move flips, and the flip releases it
 * in the same catalog transaction (so the same version bump and NOTIFY carry it to live routers).
 *
 * Invariant (under the run lock): a placed unit has a held route exactly when its placement differs
 * from the topology's route for it, and the held route names the placement. Routers (the live
 * router, the SQL functions, `shardctl route`) consult it before the topology.
 */
export const HELD_ROUTES_MIGRATION = `
CREATE TABLE shardctl.held_routes (
  unit   text PRIMARY KEY,
  shard  text NOT NULL,   -- where the unit's rows are: its placement
  wanted text NOT NULL,   -- where the topology puts it: where its move goes
  since  timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER bump AFTER INSERT OR UPDATE OR DELETE ON shardctl.held_routes FOR EACH ROW EXECUTE FUNCTION shardctl.bump_topology_version();

CREATE OR REPLACE FUNCTION shardctl.shard_for_key(tenant text) RETURNS text
LANGUAGE plpgsql STABLE STRICT AS $$
DECLARE
  ids text[];
  found text;
BEGIN
  PERFORM shardctl.strategy_for('shard_for_key', 'jump');
  -- where the tenant's rows are while a move to another shard is pending: before pins and the hash
  SELECT h.shard INTO found FROM shardctl.held_routes h WHERE h.unit = shard_for_key.tenant;
  IF found IS NOT NULL THEN RETURN found; END IF;
  SELECT p.shard INTO found FROM shardctl.pins p WHERE p.tenant = shard_for_key.tenant;
  IF found IS NOT NULL THEN RETURN found; END IF;
  SELECT array_agg(id ORDER BY position) INTO ids FROM shardctl.shards;
  RETURN ids[shardctl.jump_hash(shardctl.tenant_key64(tenant), cardinality(ids)) + 1];
END $$;

CREATE OR REPLACE FUNCTION shardctl.shard_for_cell(cell bigint) RETURNS text
LANGUAGE plpgsql STABLE STRICT AS $$
DECLARE
  st shardctl.strategy := shardctl.strategy_for('shard_for_cell', 'h3');
  target_cell text := to_hex(shardctl.h3_parent(shard_for_cell.cell, st.shard_resolution));
  found text;
BEGIN
  SELECT h.shard INTO found FROM shardctl.held_routes h WHERE h.unit = target_cell;
  IF found IS NOT NULL THEN RETURN found; END IF;
  SELECT m.shard INTO found FROM shardctl.cell_mapping m WHERE m.cell = target_cell;
  RETURN coalesce(found, st.default_shard);
END $$;
`;

export interface HeldRoute {
  /** the shard holding the unit's rows: its route until its move flips */
  readonly shard: string;
  /** the shard the topology puts it on: where its move goes */
  readonly wanted: string;
}

/**
 * Rewrites the held routes for `config`'s topology from the placements: call it in the transaction
 * that records that topology. Only rows that differ are written (an unchanged topology bumps nothing).
 */
export async function syncHeldRoutes(c: pg.ClientBase, config: Pick<Config, 'strategy' | 'shards'>): Promise<void> {
  const router = topologyRouter(config);
  const placed = await c.query<[string, string]>({ text: 'SELECT unit, shard FROM shardctl.placements', rowMode: 'array' });
  const want = new Map<string, HeldRoute>();
  for (const [unit, shard] of placed.rows) {
    const wanted = router.shardForUnit(unit);
    if (wanted !== shard) want.set(unit, { shard, wanted });
  }
  const now = await readHeldRoutes(c);
  const gone = [...now.keys()].filter((u) => !want.has(u));
  const changed = [...want].filter(([u, h]) => now.get(u)?.shard !== h.shard || now.get(u)?.wanted !== h.wanted);
  if (gone.length) await c.query('DELETE FROM shardctl.held_routes WHERE unit = ANY($1::text[])', [gone]);
  if (changed.length) {
    await c.query(
      `INSERT INTO shardctl.held_routes AS t (unit, shard, wanted) SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
       ON CONFLICT (unit) DO UPDATE SET shard = EXCLUDED.shard, wanted = EXCLUDED.wanted, since = now()`,
      [changed.map(([u]) => u), changed.map(([, h]) => h.shard), changed.map(([, h]) => h.wanted)],
    );
  }
}

/**
 * A move flipped the unit's placement to `placed`: its held route follows, in the caller's (the
 * flip's) transaction. Released when the topology routes it there (`wanted`), else held on `placed`.
 */
export async function followFlip(c: pg.ClientBase, unit: string, placed: string, wanted: string): Promise<void> {
  if (placed === wanted) {
    await c.query('DELETE FROM shardctl.held_routes WHERE unit = $1', [unit]);
    return;
  }
  await c.query(
    `INSERT INTO shardctl.held_routes AS t (unit, shard, wanted) VALUES ($1, $2, $3)
     ON CONFLICT (unit) DO UPDATE SET shard = EXCLUDED.shard, wanted = EXCLUDED.wanted, since = now()
     WHERE (t.shard, t.wanted) IS DISTINCT FROM (EXCLUDED.shard, EXCLUDED.wanted)`,
    [unit, placed, wanted],
  );
}

/** unit → held route; none on a catalog older than held routes. */
export async function readHeldRoutes(c: pg.ClientBase): Promise<Map<string, HeldRoute>> {
  const present = await c.query(`SELECT to_regclass('shardctl.held_routes') IS NOT NULL AS ok`);
  if (!present.rows[0].ok) return new Map();
  const r = await c.query<[string, string, string]>({ text: 'SELECT unit, shard, wanted FROM shardctl.held_routes', rowMode: 'array' });
  return new Map(r.rows.map(([unit, shard, wanted]) => [unit, { shard, wanted }]));
}
