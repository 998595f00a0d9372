import { quoteIdent } from '../db/ident.js';
import type { Scope } from './scope.js';

/**
 * Order-independent checksum of a set of rows, computed in SQL on each server (no rows reach Node):
 * count(*) and the SUM of a 64-bit slice of md5 over the row's text, with the columns in canonical
 * (name) order so a different physical column order still agrees. SUM rather than XOR, because XOR
 * cannot see a pair of duplicated rows; md5 rather than hashtextextended, because it is the same on
 * every CPU architecture (and hashed as UTF-8 whatever the server encoding). Text forms are stable because every session pins TimeZone, DateStyle,
 * IntervalStyle, extra_float_digits and bytea_output (src/db/session.ts).
 */
export function rowHashSql(columns: readonly string[], alias = 't0', binary = false): string {
  const row = columns.map((c) => `${alias}.${quoteIdent(c)}`).join(', ');
  // binary (copy-format.ts binaryRowHash, only where both servers' types are proven identical):
  // record_send gives each column's type OID and binary value, text in the client encoding (UTF8)
  if (binary) return `('x' || substr(md5(record_send(ROW(${row}))), 1, 16))::bit(64)::bigint`;
  // md5 over the UTF-8 bytes, so servers with different encodings agree on non-ASCII text
  return `('x' || substr(md5(convert_to(ROW(${row})::text, 'UTF8')), 1, 16))::bit(64)::bigint`;
}

/**
 * One row per unit: unit, rows, checksum (the exact sum as text), bytes (tuple sizes; `bytes: false`
 * gives 0 and spares forming each whole row: the side whose bytes nobody records). `binary`: the
 * binary row hash (rowHashSql), the same on both sides of a comparison.
 */
export function unitChecksumSql(scope: Scope, columns: readonly string[], o: { bytes?: boolean; binary?: boolean } = {}): string {
  return `SELECT ${scope.unit} AS unit, count(*) AS rows, sum(${rowHashSql(columns, 't0', o.binary)})::text AS checksum,
                 ${o.bytes === false ? '0' : 'sum(pg_column_size(t0.*))'} AS bytes
            FROM ${scope.from} WHERE ${scope.filter} GROUP BY 1`;
}

/** One row for a whole table (reference tables). */
export function tableChecksumSql(from: string, columns: readonly string[]): string {
  return `SELECT count(*) AS rows, coalesce(sum(${rowHashSql(columns)}), 0)::text AS checksum FROM ${from} AS t0`;
}

export interface UnitSum {
  rows: bigint;
  checksum: string;
  bytes: bigint;
}

export function toUnitSums(rows: { unit: string; rows: string; checksum: string | null; bytes?: string | null }[]): Map<string, UnitSum> {
  return new Map(rows.map((r) => [r.unit, { rows: BigInt(r.rows), checksum: r.checksum ?? '0', bytes: BigInt(r.bytes ?? 0) }]));
}
