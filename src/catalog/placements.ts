import type pg from 'pg';
import { withTransaction } from '../db/connect.js';

export interface Placement {
  unit: string;
  shard: string;
}

export interface TableProof {
  table: string;
  rows: bigint;
  checksum: string;
}

/** unit → shard for every placed unit. */
export async function readPlacements(c: pg.ClientBase): Promise<Map<string, string>> {
  // the rows as [unit, shard] arrays are the Map's entries: one array per row, not an object and then
  // a pair (a catalog of a million placed tenants is read whole by plan, migrate, verify, …)
  const r = await c.query<[string, string]>({ text: 'SELECT unit, shard FROM shardctl.placements', rowMode: 'array' });
  return new Map(r.rows);
}

/**
 * Journals units as placed on a shard with their per-table proofs, in one catalog transaction.
 * `onlyTables`: a partial re-copy; the proofs of those tables are replaced, the unit's totals kept.
 */
export async function recordPlacements(
  c: pg.ClientBase,
  runId: number,
  shard: string,
  units: ReadonlyMap<string, { rows: bigint; bytes: bigint; tables: TableProof[] }>,
  onlyTables?: readonly string[],
): Promise<void> {
  if (units.size === 0) return;
  const names = [...units.keys()];
  await withTransaction(c, async () => {
    if (!onlyTables) {
      await c.query(
        `INSERT INTO shardctl.placements (unit, shard, rows, bytes, run_id)
         SELECT u, $2, r, b, $3 FROM unnest($1::text[], $4::bigint[], $5::bigint[]) AS x(u, r, b)
         ON CONFLICT (unit) DO UPDATE SET shard = EXCLUDED.shard, rows = EXCLUDED.rows, bytes = EXCLUDED.bytes,
           run_id = EXCLUDED.run_id, placed_at = now()`,
        [names, shard, runId, names.map((u) => String(units.get(u)!.rows)), names.map((u) => String(units.get(u)!.bytes))],
      );
      await c.query('DELETE FROM shardctl.placement_tables WHERE unit = ANY($1::text[])', [names]);
    } else {
      await c.query('DELETE FROM shardctl.placement_tables WHERE unit = ANY($1::text[]) AND table_name = ANY($2::text[])', [names, onlyTables]);
    }
    const rows = names.flatMap((u) => units.get(u)!.tables.map((t) => [u, t.table, String(t.rows), t.checksum]));
    await c.query(
      `INSERT INTO shardctl.placement_tables (unit, table_name, rows, checksum)
       SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[])`,
      [rows.map((r) => r[0]), rows.map((r) => r[1]), rows.map((r) => r[2]), rows.map((r) => r[3])],
    );
  });
}
