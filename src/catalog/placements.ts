import type pg from 'pg';
import { withTransaction } from '../db/connect.js';
import { copyLinesInto } from '../copy/pipe.js';
import { encodeCopyField } from '../copy/text-field.js';

export interface Placement {
  unit: string;
  shard: string;
}

/**
 * One table's per-unit sums over a batch's units, as columns: index i is the batch's i-th unit.
 * A batch holds up to 50,000 units (MAX_UNITS) per table and side; an object, two bigints and a map entry per
 * unit were most of the garbage a run of 200,000 tenants made (issue 26), and they lived long
 * enough (the copy's seconds) to reach V8's old space. Counts and byte sums are exact as numbers
 * below 2^53; the checksum, an exact sum of 64-bit hashes, stays text.
 */
export interface UnitColumns {
  readonly rows: Float64Array;
  readonly bytes: Float64Array;
  /** '0' where the unit has no rows (the sum of nothing) */
  readonly checksums: string[];
}

/**
 * The units a batch placed, as columns (unit-copy/unit-sums.ts): `kept[i]` is 1 where `units[i]` is placed;
 * per table, the source's sums are its proofs (none for a table where the unit has no rows).
 * Without verification no sums were taken: `tables` is empty.
 */
export interface PlacedBatch {
  readonly units: readonly string[];
  readonly kept: Uint8Array;
  readonly count: number;
  readonly tables: readonly { readonly table: string; readonly sums: UnitColumns }[];
}

/** unit → shard for every placed unit. */
export async function readPlacements(c: pg.ClientBase): Promise<Map<string, string>> {
  // the rows as [unit, shard] arrays are the Map's entries: one array per row, not an object and then
  // a pair (a catalog of a million placed tenants is read whole by plan, migrate, verify, …)
  const r = await c.query<[string, string]>({ text: 'SELECT unit, shard FROM shardctl.placements', rowMode: 'array' });
  return new Map(r.rows);
}

/**
 * Journals a batch's placed units on a shard with their per-table proofs, in one catalog
 * transaction, streamed as COPY lines: a batch of 20,000 units built arrays of strings and arrays
 * per unit for unnest() parameters, garbage that outlived the journal's round trips (issue 26).
 * A unit placed before (a resync) is replaced whole: deleting its placement deletes its proofs
 * (the forget_proofs trigger, journal-keys.ts). Placements and proofs are written in one transaction:
 * no proof is ever committed without its placement, the invariant the catalog keeps without a
 * per-row foreign-key check. `onlyTables`: a partial re-copy; the proofs of those tables are replaced,
 * the unit's totals kept. `fresh`: none of the units was placed when the run began, under the run
 * lock: no placement to replace, and no DELETE spelling 50,000 units to find none (issue 26; a
 * placement there after all stops the journal with a duplicate key, never doubles it).
 */
export async function recordPlacements(c: pg.ClientBase, runId: number, shard: string, placed: PlacedBatch, onlyTables?: readonly string[], fresh = false): Promise<void> {
  if (placed.count === 0) return;
  const names = placed.units.filter((_, i) => placed.kept[i] === 1);
  await withTransaction(c, async () => {
    if (!onlyTables) {
      if (!fresh) await c.query('DELETE FROM shardctl.placements WHERE unit = ANY($1::text[])', [names]);
      await copyLinesInto(c, 'shardctl.placements (unit, shard, rows, bytes, run_id)', placementLines(placed, encodeCopyField(shard), String(runId)));
    } else {
      await c.query('DELETE FROM shardctl.placement_tables WHERE unit = ANY($1::text[]) AND table_name = ANY($2::text[])', [names, onlyTables]);
    }
    await copyLinesInto(c, 'shardctl.placement_tables (unit, table_name, rows, checksum)', proofLines(placed));
  });
}

/** unit, shard, rows, bytes, run_id of each kept unit: its totals over the tables' proofs. */
function* placementLines(placed: PlacedBatch, shard: string, runId: string): Generator<string> {
  for (let i = 0; i < placed.units.length; i++) {
    if (placed.kept[i] !== 1) continue;
    let rows = 0;
    let bytes = 0;
    for (const t of placed.tables) {
      rows += t.sums.rows[i]!;
      bytes += t.sums.bytes[i]!;
    }
    yield `${encodeCopyField(placed.units[i]!)}\t${shard}\t${rows}\t${bytes}\t${runId}\n`;
  }
}

/** unit, table, rows, checksum of each kept unit's tables where it has rows. */
function* proofLines(placed: PlacedBatch): Generator<string> {
  for (const t of placed.tables) {
    const table = encodeCopyField(t.table);
    for (let i = 0; i < placed.units.length; i++) {
      if (placed.kept[i] === 1 && t.sums.rows[i]! > 0) yield `${encodeCopyField(placed.units[i]!)}\t${table}\t${t.sums.rows[i]}\t${t.sums.checksums[i]}\n`;
    }
  }
}

/**
 * Units created on the monolith while it was followed have rows on their shards but no placement
 * yet: after cutover the catalog must name every unit's shard. Adds `units` (a unit already placed
 * is left as it is); returns how many were added.
 */
export async function recordNewUnits(c: pg.ClientBase, units: ReadonlyMap<string, { shard: string; rows: number }>): Promise<number> {
  if (units.size === 0) return 0;
  const names = [...units.keys()];
  const r = await c.query(
    `INSERT INTO shardctl.placements (unit, shard, rows)
     SELECT u, s, n FROM unnest($1::text[], $2::text[], $3::bigint[]) AS x(u, s, n)
     ON CONFLICT (unit) DO NOTHING`,
    [names, names.map((u) => units.get(u)!.shard), names.map((u) => String(units.get(u)!.rows))],
  );
  return r.rowCount ?? 0;
}

/** The units' placements (and, by the forget_proofs trigger, their proofs) are forgotten. */
export async function forgetPlacements(c: pg.ClientBase, units: readonly string[]): Promise<void> {
  await c.query('DELETE FROM shardctl.placements WHERE unit = ANY($1::text[])', [units]);
}

export interface PlacedSize {
  shard: string;
  bytes: number;
}

/** unit → shard and bytes of every placed unit; none when no run has created the catalog yet. */
export async function placementSizesIfAny(c: pg.ClientBase): Promise<Map<string, PlacedSize>> {
  if (!(await catalogHasPlacements(c))) return new Map();
  const r = await c.query<{ unit: string; shard: string; bytes: string }>('SELECT unit, shard, bytes FROM shardctl.placements');
  return new Map(r.rows.map((p) => [p.unit, { shard: p.shard, bytes: Number(p.bytes) }]));
}

/** Every placement with its rows and bytes as the catalog holds them (text: bigint). */
export async function placementTotals(c: pg.ClientBase): Promise<{ unit: string; shard: string; rows: string; bytes: string }[]> {
  return (await c.query<{ unit: string; shard: string; rows: string; bytes: string }>('SELECT unit, shard, rows, bytes FROM shardctl.placements')).rows;
}

/** Whether a shardctl run has created the catalog's placements (read-only commands never create them). */
export async function catalogHasPlacements(c: pg.ClientBase): Promise<boolean> {
  return (await c.query(`SELECT to_regclass('shardctl.placements') IS NOT NULL AS ok`)).rows[0].ok === true;
}
