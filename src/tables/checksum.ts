import { rowHashSql, type RowHash } from './row-hash.js';
import { groupedByUnit, type Scope } from './scope.js';

/*
 * Order-independent checksums of sets of rows, computed in SQL on each server (no rows reach Node):
 * count(*) and the SUM of a 64-bit hash of each row (row-hash.ts), with the columns in canonical
 * (name) order so a different physical column order still agrees. SUM rather than XOR, because XOR
 * cannot see a pair of duplicated rows.
 */

/**
 * One row per unit: unit, rows, checksum (the exact sum as text), bytes (tuple sizes; `bytes: false`
 * gives 0 and spares forming each whole row: the side whose bytes nobody records). `hash`: the row
 * hash (row-hash.ts), the same on both sides of a comparison.
 */
export function unitChecksumSql(scope: Scope, columns: readonly string[], o: { bytes?: boolean; hash?: RowHash } = {}): string {
  return groupedByUnit(scope, {
    rows: 'count(*)',
    checksum: `sum(${rowHashSql(columns, 't0', o.hash)})::text`,
    bytes: o.bytes === false ? '0' : 'sum(pg_column_size(t0.*))',
  });
}

/** One row for a whole table (reference tables). */
export function tableChecksumSql(from: string, columns: readonly string[], hash?: RowHash): string {
  return `SELECT count(*) AS rows, coalesce(sum(${rowHashSql(columns, 't0', hash)}), 0)::text AS checksum FROM ${from} AS t0`;
}
