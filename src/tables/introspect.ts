import type pg from 'pg';
import { columnSequenceSql } from './column-sequence.js';

export interface ColumnInfo {
  readonly name: string;
  /** format_type(): `numeric(12,2)`, `timestamp with time zone`, `text[]` … */
  readonly type: string;
  readonly notNull: boolean;
  readonly hasDefault: boolean;
  /** GENERATED ALWAYS AS (…) STORED: never copied, the target computes it. */
  readonly generated: boolean;
  /** The sequence behind a serial or identity column, or the one its DEFAULT calls (column-sequence.ts), if any. */
  readonly sequence?: string;
}

export interface TableInfo {
  readonly table: string;
  readonly columns: readonly ColumnInfo[];
  readonly primaryKey: readonly string[];
  /** Index definitions with the table name left out, for drift checks. */
  readonly indexes: readonly string[];
}

const COLUMNS_SQL = `
  SELECT c.oid::regclass::text AS regclass, n.nspname || '.' || c.relname AS qualified,
         a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null,
         a.atthasdef AS has_default, a.attgenerated <> '' AS generated,
         ${columnSequenceSql('c.oid', 'a.attname')} AS sequence
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
   WHERE n.nspname || '.' || c.relname = ANY($1::text[]) AND c.relkind IN ('r', 'p')
   ORDER BY qualified, a.attnum`;

const KEYS_SQL = `
  SELECT n.nspname || '.' || c.relname AS qualified, i.indisprimary AS is_primary,
         regexp_replace(pg_get_indexdef(i.indexrelid), '^CREATE (UNIQUE )?INDEX \\S+ ON \\S+ ', '\\1') AS def,
         ARRAY(SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum ORDER BY k.ord)::text[] AS cols
    FROM pg_index i
    JOIN pg_class c ON c.oid = i.indrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname || '.' || c.relname = ANY($1::text[])
   ORDER BY qualified, def`;

/** Reads the definition of the given tables (`schema.table`); a table that does not exist is absent from the map. */
export async function introspect(client: pg.ClientBase, tables: readonly string[]): Promise<Map<string, TableInfo>> {
  // one client runs one query at a time
  const cols = await client.query(COLUMNS_SQL, [tables]);
  const keys = await client.query(KEYS_SQL, [tables]);
  const out = new Map<string, { columns: ColumnInfo[]; primaryKey: string[]; indexes: string[] }>();
  const entry = (t: string) => out.get(t) ?? out.set(t, { columns: [], primaryKey: [], indexes: [] }).get(t)!;
  for (const r of cols.rows) {
    entry(r.qualified).columns.push({
      name: r.name,
      type: r.type,
      notNull: r.not_null,
      hasDefault: r.has_default,
      generated: r.generated,
      sequence: r.sequence ?? undefined,
    });
  }
  for (const r of keys.rows) {
    const e = entry(r.qualified);
    if (r.is_primary) e.primaryKey = r.cols;
    e.indexes.push(r.def);
  }
  return new Map([...out].map(([table, e]) => [table, { table, ...e }]));
}

/** Columns COPY moves: all but generated ones, in a canonical (name) order so physical order never matters. */
export function copyColumns(info: TableInfo): string[] {
  return info.columns.filter((c) => !c.generated).map((c) => c.name).sort();
}
