import type pg from 'pg';
import { quoteTable } from '../db/ident.js';
import { tableChecksumSql, unitChecksumSql } from '../tables/checksum.js';
import type { RowHash } from '../tables/row-hash.js';
import type { TableModel } from '../tables/model.js';
import type { Scope } from '../tables/scope.js';
import type { UnitColumns } from '../catalog/placements.js';
import { readUnitColumns } from './unit-sums.js';

/**
 * The shard side of a batch's proof for one table, read by the shard's own query inside the batch's
 * transaction (before COMMIT): per unit, the rows and checksum the shard holds, to compare with the
 * source's `wanted` (the same row hash, unit-sums.ts).
 *
 * Where the batch's rows are most of the shard table (an initial load), the whole table is summed
 * first, without the units' filter, their grouping or a via table's joins: one count and one sum,
 * about a third of the grouped query's CPU on a freshly loaded table (issue 26). When that total
 * equals the source's total over the batch's units, the shard table holds exactly the source's rows
 * of those units and nothing else (the odds of a 64-bit sum colliding are the per-unit comparison's
 * odds): every unit's rows are among them, and a row's unit follows from its own columns and its
 * parents' (proven alike), so every unit's sums agree and are returned as they are. Any other total
 * (a row changed, missing or doubled, rows of other units, rows another batch committed meanwhile)
 * falls back to the grouped per-unit query, which names the units that differ. Tables with several
 * routes always take the grouped query: a row there counts once for each of its units.
 */
export async function shardSums(
  dst: pg.ClientBase,
  t: TableModel,
  o: {
    scope: Scope;
    hash?: RowHash;
    copiedBytes: number;
    wanted: UnitColumns;
    index: ReadonlyMap<string, number>;
    /** readies what the grouped query's scope joins (a fresh shard's staged cells), only when it runs */
    grouping?: () => Promise<void>;
  },
): Promise<UnitColumns> {
  const size = Number((await dst.query<{ n: string }>(SIZE_SQL, [quoteTable(t.name)])).rows[0]!.n);
  const whole = o.copiedBytes * 2 >= size;
  if (whole && !t.config.routes && (await wholeTableAgrees(dst, t, o.hash, o.wanted))) return o.wanted;
  await o.grouping?.();
  // The shard's statistics predate the rows this transaction copied: where those rows are most of
  // the table, the planner still expects a few rows and visits them through the route column's
  // index, at twice the cost of reading the table through (400,000 rows not yet committed:
  // 0.12–0.20 s against 0.06–0.08 s). Only the plan changes, never the rows summed.
  if (whole) await dst.query('SET LOCAL enable_bitmapscan = off; SET LOCAL enable_indexscan = off');
  // the shard's bytes are not recorded (the source's are): spare it forming every whole row
  const r = await readUnitColumns(dst, unitChecksumSql(o.scope, t.columns, { bytes: false, hash: o.hash }), o.index);
  if (whole) await dst.query('RESET enable_bitmapscan; RESET enable_indexscan');
  return r;
}

// The table's bytes, its TOAST table's included (the copied bytes include the values stored there:
// without them, a batch of a few large values would take a table holding many others for its own,
// and the whole-table total would read them all); a partitioned table's are its partitions' (its
// own relation is empty). Main forks only: the free space map a COPY may start is not rows.
const SIZE_SQL = `
  SELECT coalesce(sum(pg_relation_size(c.oid) + CASE WHEN c.reltoastrelid <> 0 THEN pg_relation_size(c.reltoastrelid) ELSE 0 END), 0) AS n
    FROM pg_class c
   WHERE c.oid IN (SELECT p.relid FROM pg_partition_tree($1::regclass) AS p UNION ALL SELECT $1::regclass)`;

/** Whether the shard table's count and checksum, over all its rows, equal the source's over the batch's units. */
async function wholeTableAgrees(dst: pg.ClientBase, t: TableModel, hash: RowHash | undefined, wanted: UnitColumns): Promise<boolean> {
  let rows = 0;
  let checksum = 0n;
  for (let i = 0; i < wanted.rows.length; i++) {
    rows += wanted.rows[i]!;
    checksum += BigInt(wanted.checksums[i]!);
  }
  const got = (await dst.query<{ rows: string; checksum: string }>(tableChecksumSql(quoteTable(t.name), t.columns, hash))).rows[0]!;
  return Number(got.rows) === rows && BigInt(got.checksum) === checksum;
}
