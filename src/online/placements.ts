import type pg from 'pg';

/**
 * Units created on the monolith while it was followed have rows on their shards but no placement
 * yet: after cutover the catalog must name every unit's shard. Every row of such a unit was written
 * while following, so the changed rows cutover checked name them all (with their shard and root
 * rows) — no scan of the monolith. Returns how many were added.
 */
export async function recordNewUnits(catalog: pg.ClientBase, units: ReadonlyMap<string, { shard: string; rows: number }>): Promise<number> {
  if (units.size === 0) return 0;
  const names = [...units.keys()];
  const r = await catalog.query(
    `INSERT INTO shardctl.placements (unit, shard, rows)
     SELECT u, s, n FROM unnest($1::text[], $2::text[], $3::bigint[]) AS x(u, s, n)
     ON CONFLICT (unit) DO NOTHING`,
    [names, names.map((u) => units.get(u)!.shard), names.map((u) => String(units.get(u)!.rows))],
  );
  return r.rowCount ?? 0;
}
