import { binaryRowHash, copyFormat, type ServerTypes } from './copy-format.js';
import type { TableModel } from './model.js';

/**
 * How a checksum hashes each row. Both sides of one comparison must use the same.
 *  - `form`: the row's text (`ROW(…)::text` as UTF-8: survives any type or encoding difference) or its
 *    binary form (`record_send`: each column's type OID and binary value; only where every server has
 *    the same built-in types, copy-format.ts). Binary is cheaper to form and as exact.
 *  - `fn`: md5 (the same on every server) or `pg`, PostgreSQL's own 64-bit hash of those bytes
 *    (`hash_array_extended` over one bytea: the bytea hash opclass, hash_any_extended), ~2.4× cheaper
 *    than md5 per row (bench). It is the hash PostgreSQL's hash partitions rely on, so it does not
 *    change between major versions, but it reads words in the CPU's byte order: used only where
 *    every server of the comparison returned the same value for a probe (`serverTypes`, copy-format.ts).
 */
export interface RowHash {
  readonly form: 'text' | 'binary';
  readonly fn: 'md5' | 'pg';
}

/** text and md5: what every server computes alike, whatever it runs on */
export const PORTABLE_HASH: RowHash = { form: 'text', fn: 'md5' };

/** The row hash as a bigint SQL expression over `alias`'s `columns`, in this order (callers sort them). */
export function rowHashExpr(row: string, h: RowHash): string {
  // the text as UTF-8, so servers with different encodings agree on non-ASCII text
  const bytes = h.form === 'binary' ? `record_send(ROW(${row}))` : `convert_to(ROW(${row})::text, 'UTF8')`;
  if (h.fn === 'pg') return `hash_array_extended(ARRAY[${bytes}], 0)`;
  return `('x' || substr(md5(${bytes}), 1, 16))::bit(64)::bigint`;
}

/**
 * The row hash for comparing `table` between `source` and every one of `others`: binary where each
 * pair would copy it binary (and it has no arrays), `pg` where every server gave the same probe.
 */
export function rowHashFor(table: TableModel, source: ServerTypes, others: readonly ServerTypes[]): RowHash {
  const agree = source.probe !== undefined && others.every((o) => o.probe === source.probe);
  const binary = binaryRowHash(table, source) && others.every((o) => copyFormat(table, source, o) === 'binary');
  return { form: binary ? 'binary' : 'text', fn: agree ? 'pg' : 'md5' };
}
