import type pg from 'pg';
import type { TableModel } from './model.js';

/** COPY's wire format for one table between two servers. */
export type CopyFormat = 'text' | 'binary';

/** One column as a server stores it: the type's OID, its format_type() spelling and its binary send function. */
export interface ColumnType {
  readonly oid: number;
  readonly type: string;
  readonly send: string;
}

export interface ServerTypes {
  /** PostgreSQL major version (server_version_num / 10000) */
  readonly major: number;
  /** server_encoding: the bytes a text value is stored as */
  readonly encoding: string;
  /** per table (schema.table as the model names it), per column */
  readonly tables: ReadonlyMap<string, ReadonlyMap<string, ColumnType>>;
  /** the server's value for the row-hash probe (row-hash.ts); undefined where it has none */
  readonly probe?: string;
}

// PostgreSQL's FirstNormalObjectId: below it, the types the server ships with, whose OIDs and
// binary send/receive functions are the same on every server of one major version.
const FIRST_USER_OID = 16384;

const SETTINGS_SQL = `SELECT current_setting('server_version_num')::int / 10000 AS major, current_setting('server_encoding') AS encoding`;

const TYPES_SQL = `
  SELECT n.nspname || '.' || c.relname AS qualified, a.attname AS name, a.atttypid::int AS oid,
         format_type(a.atttypid, a.atttypmod) AS type, p.proname AS send, s.major, s.encoding
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    JOIN pg_type ty ON ty.oid = a.atttypid
    JOIN pg_proc p ON p.oid = ty.typsend
    CROSS JOIN (${SETTINGS_SQL}) s
   WHERE n.nspname || '.' || c.relname = ANY($1::text[]) AND c.relkind IN ('r', 'p')`;

/** The column types of `tables` on one server. */
export async function serverTypes(client: pg.ClientBase, tables: readonly string[]): Promise<ServerTypes> {
  const r = await client.query<{ qualified: string; name: string; oid: number; type: string; send: string; major: number; encoding: string }>(TYPES_SQL, [tables]);
  const out = new Map<string, Map<string, ColumnType>>();
  for (const row of r.rows) {
    let t = out.get(row.qualified);
    if (!t) out.set(row.qualified, (t = new Map()));
    t.set(row.name, { oid: row.oid, type: row.type, send: row.send });
  }
  const { major, encoding } = r.rows[0] ?? (await client.query<{ major: number; encoding: string }>(SETTINGS_SQL)).rows[0]!;
  // the server's value for fixed inputs of the `pg` row hashes (row-hash.ts); none before
  // PostgreSQL 11, which brought the extended hash functions
  const probe = major >= 11 ? (await client.query<{ probe: string }>(PROBE)).rows[0]!.probe : undefined;
  return { major, encoding, tables: out, probe };
}

// every hash function a `pg` row hash calls, on fixed inputs (a server that reads words in another
// byte order, or hashes otherwise, gives other values)
const PROBE = `SELECT concat_ws(' ',
  hash_array_extended(ARRAY[convert_to('shardctl ' || repeat('0123456789', 7), 'UTF8')], 0),
  hashtextextended('shardctl ' || repeat('0123456789', 7), 1), hashbpcharextended('shardctl 0123'::char(20), 2),
  hashint2extended(-7::int2, 3), hashint4extended(70000, 4), hashint8extended(-7000000000, 5),
  hash_numeric_extended(7.25, 6), uuid_hash_extended('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 7)) AS probe`;

/**
 * Binary COPY is type-exact and has no DateStyle/extra_float_digits hazards, but binary input is
 * only safe where both sides read the bytes as the same type (NOTES-COPY: smallint → int and
 * int4[] → int8[] fail; an array or composite carries its element OIDs). So a table goes binary only
 * when, for every copied column, both servers (of one major version) have the same built-in type:
 * same OID below FirstNormalObjectId and the same format_type() (typmod included). Anything else —
 * enums, domains, extension types (their OIDs differ from server to server), a typmod that differs —
 * stays text, the format that converts through each side's input function. So do the reg* types,
 * whose binary form is an OID that only means something on the server it came from.
 */
export function copyFormat(table: TableModel, source: ServerTypes, target: ServerTypes): CopyFormat {
  return table.columns.every((c) => sameBuiltinType(table.name, c, source, target)) ? 'binary' : 'text';
}

/** Column `column` of `table` has the same built-in type on both servers, in a form its binary value means the same in (copyFormat). */
export function sameBuiltinType(table: string, column: string, source: ServerTypes, target: ServerTypes): boolean {
  if (source.major !== target.major) return false;
  const a = source.tables.get(table)?.get(column);
  const b = target.tables.get(table)?.get(column);
  if (!a || !b || a.oid !== b.oid || a.oid >= FIRST_USER_OID || a.type !== b.type) return false;
  // reg* types (regclass, regtype, regproc, …) travel as a raw OID in binary, which names another
  // object or none on the other server; in text they travel by name, resolved again there
  return !a.type.startsWith('reg');
}
