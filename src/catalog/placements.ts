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
 * A batch holds up to 20,000 units per table and side; an object, two bigints and a map entry per
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
 * The units a batch placed, as columns (transfer/unit-sums.ts): `kept[i]` is 1 where `units[i]` is placed;
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
 * (ON DELETE CASCADE). `onlyTables`: a partial re-copy; the proofs of those tables are replaced,
 * the unit's totals kept.
 */
export async function recordPlacements(c: pg.ClientBase, runId: number, shard: string, placed: PlacedBatch, onlyTables?: readonly string[]): Promise<void> {
  if (placed.count === 0) return;
  const names = placed.units.filter((_, i) => placed.kept[i] === 1);
  await withTransaction(c, async () => {
    if (!onlyTables) {
      await c.query('DELETE FROM shardctl.placements WHERE unit = ANY($1::text[])', [names]);
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
