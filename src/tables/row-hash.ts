import { quoteIdent } from '../db/ident.js';
import { copyFormat, sameBuiltinType, type ColumnType, type ServerTypes } from './copy-format.js';
import type { TableModel } from './model.js';

/**
 * How a checksum hashes each row. Both sides of one comparison must use the same.
 *  - `form`: the row's text (`ROW(…)::text` as UTF-8: survives any type or encoding difference), its
 *    binary form (`record_send`: each column's type OID and binary value; only where every server
 *    has the same built-in types, copy-format.ts), or `typed`: each column through a hash of its
 *    own (`columns`). Binary and typed are as exact as the text, and cheaper to form.
 *  - `fn`: md5 (the same on every server: the text and binary forms) or `pg`, PostgreSQL's own
 *    64-bit hashes (the hash opclasses' extended functions, on which hash partitioning relies, so
 *    they do not change between major versions: the typed form). They read words in the CPU's byte
 *    order: typed only where every server of the comparison returned the same value for a probe
 *    (`serverTypes`, copy-format.ts).
 */
export type RowHash =
  | { readonly form: 'text' | 'binary'; readonly fn: 'md5' }
  | { readonly form: 'typed'; readonly fn: 'pg'; readonly columns: ReadonlyMap<string, ColumnHash> };

/**
 * The `typed` hash of one column. A hash opclass hashes EQUAL values alike, which is coarser than
 * identical where a type's equality is: numeric (1.5 = 1.50: its scale is hashed too), int8
 * (folded to 32 bits: its high half is hashed too), text under a nondeterministic collation
 * (hashed in "C"), char(n) (trailing blanks ignored: every value of a char(n) is padded to n, so
 * two equal values are identical). Every other type (floats' −0, timestamps folded like int8,
 * intervals, …) hashes its binary send form, which is exact. Text kinds need one server encoding
 * (they hash the stored bytes); else they too hash the send form (in the client encoding).
 * A column whose type is not the same built-in type on every server (an enum, a domain, an
 * extension type, int4 here and int8 there), and an array (its send form carries a has-nulls flag
 * that two equal arrays may set differently), hashes its text (`output`): what the text form hashes
 * of it, through the type's output function, under the pinned session settings.
 */
export type ColumnHash =
  | { readonly kind: 'int2' | 'int4' | 'int8' | 'bool' | 'text' | 'bpchar' | 'numeric' | 'uuid' | 'output' }
  | { readonly kind: 'send'; readonly fn: string };

/** text and md5: what every server computes alike, whatever it runs on */
export const PORTABLE_HASH: RowHash = { form: 'text', fn: 'md5' };

/**
 * The row hash as a bigint SQL expression over `alias`'s `columns`, in this order (callers sort
 * them). The text forms are stable because every session pins TimeZone, DateStyle, IntervalStyle,
 * extra_float_digits and bytea_output (src/db/session.ts).
 */
export function rowHashSql(columns: readonly string[], alias = 't0', h: RowHash = PORTABLE_HASH): string {
  const sql = columns.map((c) => `${alias}.${quoteIdent(c)}`);
  if (h.form === 'typed') return typedRowHash(columns.map((c, i) => columnHashSql(sql[i]!, h.columns.get(c) ?? OUTPUT, i)));
  const row = sql.join(', ');
  // the text as UTF-8, so servers with different encodings agree on non-ASCII text
  const bytes = h.form === 'binary' ? `record_send(ROW(${row}))` : `convert_to(ROW(${row})::text, 'UTF8')`;
  return `('x' || substr(md5(${bytes}), 1, 16))::bit(64)::bigint`;
}

// A NULL in column i hashes to NULL_HASH xor i (the functions are strict).
const NULL_HASH = -7046029254386353131n;

/**
 * Each column's hash is seeded with its position (so two columns that trade values change the
 * row), NULLs get a constant of their position, and the XOR of the columns goes through one more
 * seeded hash: the per-row sums add these, and a linear row hash would let two rows that trade a
 * value keep the sum. hashint4extended(n, x) mixes all 64 bits of x (hashint8extended would fold
 * them to 32). Flat, not nested through the seeds: a NULL-safe nesting repeats the inner expression.
 */
function typedRowHash(columns: readonly string[]): string {
  const parts = columns.map((c, i) => `coalesce(${c}, ${NULL_HASH ^ BigInt(i)})`);
  return `hashint4extended(${columns.length}, ${parts.join(' # ') || '0'})`;
}

function columnHashSql(col: string, h: ColumnHash, i: number): string {
  const seed = i + 1;
  switch (h.kind) {
    case 'int2':
      return `hashint2extended(${col}, ${seed})`;
    case 'int4':
      return `hashint4extended(${col}, ${seed})`;
    case 'int8':
      return `hashint4extended((${col} >> 32)::int4, hashint8extended(${col}, ${seed}))`;
    case 'bool':
      return `hashint4extended(${col}::int4, ${seed})`;
    case 'text':
      return `hashtextextended(${col} COLLATE "C", ${seed})`;
    case 'bpchar':
      return `hashbpcharextended(${col} COLLATE "C", ${seed})`;
    case 'numeric':
      return `hashint4extended(coalesce(scale(${col}), -1), hash_numeric_extended(${col}, ${seed}))`;
    case 'uuid':
      return `uuid_hash_extended(${col}, ${seed})`;
    case 'send':
      return `hash_array_extended(ARRAY[pg_catalog.${quoteIdent(h.fn)}(${col})], ${seed})`;
    case 'output': {
      // format('%s') calls the output function (a cast to text need not: bool, char(n), inet); it
      // turns NULL into '', hence the CASE. As UTF-8: this kind does not know the encodings agree.
      const text = `CASE WHEN ${col} IS NULL THEN NULL ELSE format('%s', ${col}) END`;
      return `hash_array_extended(ARRAY[convert_to(${text}, 'UTF8')], ${seed})`;
    }
  }
}

const OUTPUT: ColumnHash = { kind: 'output' };

/** How the typed form hashes a column of type `c`, the same built-in type on every server; `oneEncoding`: every server stores text alike. */
function columnHash(c: ColumnType, oneEncoding: boolean): ColumnHash {
  if (isArray(c)) return OUTPUT;
  switch (c.oid) {
    case 21:
      return { kind: 'int2' };
    case 23:
      return { kind: 'int4' };
    case 20:
      return { kind: 'int8' };
    case 16:
      return { kind: 'bool' };
    case 1700:
      return { kind: 'numeric' };
    case 2950:
      return { kind: 'uuid' };
    case 25:
    case 1043:
      if (oneEncoding) return { kind: 'text' };
      break;
    case 1042:
      // char(n) only: a bare bpchar keeps whatever trailing blanks it was given
      if (oneEncoding && /^character\(\d+\)$/.test(c.type)) return { kind: 'bpchar' };
      break;
  }
  return { kind: 'send', fn: c.send };
}

/**
 * The row hash for comparing `table` between `source` and every one of `others`: typed where every
 * server gave the same probe (each column as `columnHash` says where its type is the same built-in
 * type everywhere, else its text); elsewhere md5 of the binary form where each pair would copy the
 * table binary (and it has no arrays), else of the text.
 */
export function rowHashFor(table: TableModel, source: ServerTypes, others: readonly ServerTypes[]): RowHash {
  const agree = source.probe !== undefined && others.every((o) => o.probe === source.probe);
  if (agree) {
    const oneEncoding = others.every((o) => o.encoding === source.encoding);
    const hashOf = (c: string) =>
      others.every((o) => sameBuiltinType(table.name, c, source, o)) ? columnHash(source.tables.get(table.name)!.get(c)!, oneEncoding) : OUTPUT;
    return { form: 'typed', fn: 'pg', columns: new Map(table.columns.map((c) => [c, hashOf(c)])) };
  }
  const binary = noArrays(table, source) && others.every((o) => copyFormat(table, source, o) === 'binary');
  return { form: binary ? 'binary' : 'text', fn: 'md5' };
}

// An array's binary form carries a has-nulls flag that two equal arrays may set differently: the
// binary row form is for tables without arrays, and the typed form hashes an array's text.
const isArray = (c: ColumnType | undefined) => Boolean(c?.type.endsWith('[]'));

/** The binary row form (record_send) is as exact as the text where the copy could go binary, and has no arrays. */
function noArrays(table: TableModel, source: ServerTypes): boolean {
  const s = source.tables.get(table.name);
  return Boolean(s) && table.columns.every((c) => !isArray(s!.get(c)));
}
