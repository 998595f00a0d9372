import type pg from 'pg';
import { quoteIdent, quoteTable } from '../db/ident.js';
import { columnType, type TableModel } from '../tables/model.js';
import type { Row } from './decoder.js';

/**
 * The few statements the applier runs, as prepared statements per shard connection (parsed and
 * planned once per shape). Every value is a bound parameter in the text form the source printed,
 * so the shard's input functions read exactly what the source's output functions wrote.
 */
export class Statements {
  private readonly names = new Map<string, string>();

  constructor(private readonly client: pg.ClientBase) {}

  async run(text: string, values: unknown[]): Promise<pg.QueryResult> {
    let name = this.names.get(text);
    if (!name) this.names.set(text, (name = `shardctl_${this.names.size}`));
    return this.client.query({ name, text, values });
  }
}

const cols = (names: readonly string[]) => names.map(quoteIdent).join(', ');
const where = (keys: readonly string[], from = 1) => keys.map((k, i) => `${quoteIdent(k)} = $${i + from}`).join(' AND ');

export function insertSql(t: TableModel, columns: readonly string[]): string {
  return `INSERT INTO ${quoteTable(t.name)} (${cols(columns)}) VALUES (${columns.map((_, i) => `$${i + 1}`).join(', ')})`;
}

/**
 * Many rows in one statement: one text array per column, each value cast from the text the source
 * printed (the same input function a bound parameter goes through). One statement text per table
 * and column set, whatever the number of rows, so it stays one prepared statement.
 */
export function insertManySql(t: TableModel, columns: readonly string[]): string {
  const casts = columns.map((c, i) => `x.c${i}::${columnType(t.info, c)}`).join(', ');
  const arrays = columns.map((_, i) => `$${i + 1}::text[]`).join(', ');
  return `INSERT INTO ${quoteTable(t.name)} (${cols(columns)}) SELECT ${casts} FROM unnest(${arrays}) AS x(${columns.map((_, i) => `c${i}`).join(', ')})`;
}

/** Deletes the rows whose primary keys are given, one text array per key column. */
export function deleteManySql(t: TableModel): string {
  const pk = t.info.primaryKey;
  if (pk.length === 1) return `DELETE FROM ${quoteTable(t.name)} WHERE ${quoteIdent(pk[0]!)} = ANY($1::text[]::${columnType(t.info, pk[0]!)}[])`;
  const arrays = pk.map((k, i) => `$${i + 1}::text[]::${columnType(t.info, k)}[]`).join(', ');
  return `DELETE FROM ${quoteTable(t.name)} WHERE (${cols(pk)}) IN (SELECT * FROM unnest(${arrays}))`;
}

export function updateSql(t: TableModel, set: readonly string[]): string {
  const assign = set.map((c, i) => `${quoteIdent(c)} = $${i + 1}`).join(', ');
  return `UPDATE ${quoteTable(t.name)} SET ${assign} WHERE ${where(t.info.primaryKey, set.length + 1)}`;
}

/**
 * Many UPDATEs of one table and one set of columns in one statement: one text array per set column
 * then per key column, each value cast from the text the source printed. RETURNING the ordinal of
 * each input row that found its row, so the applier knows which keys are not on this shard (a row
 * that moved to it). Every key appears at most once (the applier keeps the last update of a key).
 */
export function updateManySql(t: TableModel, set: readonly string[]): string {
  const pk = t.info.primaryKey;
  const all = [...set, ...pk];
  const assign = set.map((c, i) => `${quoteIdent(c)} = v.c${i}::${columnType(t.info, c)}`).join(', ');
  const match = pk.map((k, i) => `x.${quoteIdent(k)} = v.c${set.length + i}::${columnType(t.info, k)}`).join(' AND ');
  const arrays = all.map((_, i) => `$${i + 1}::text[]`).join(', ');
  return `UPDATE ${quoteTable(t.name)} AS x SET ${assign} FROM unnest(${arrays}) WITH ORDINALITY AS v(${all.map((_, i) => `c${i}`).join(', ')}, n) WHERE ${match} RETURNING v.n`;
}

export function deleteRowSql(t: TableModel): string {
  return `DELETE FROM ${quoteTable(t.name)} WHERE ${where(t.info.primaryKey)}`;
}

/** The copied columns of the rows of `t` whose `column` is one of $1 (an array), as text. */
export function selectByColumnSql(t: TableModel, column: string): string {
  const text = t.columns.map((c) => `${quoteIdent(c)}::text AS ${quoteIdent(c)}`).join(', ');
  return `SELECT ${text} FROM ${quoteTable(t.name)} WHERE ${quoteIdent(column)} = ANY($1::${columnType(t.info, column)}[])`;
}

export function selectByKeySql(t: TableModel): string {
  const text = t.columns.map((c) => `${quoteIdent(c)}::text AS ${quoteIdent(c)}`).join(', ');
  return `SELECT ${text} FROM ${quoteTable(t.name)} WHERE ${where(t.info.primaryKey)}`;
}

export function existsSql(t: TableModel, column: string): string {
  return `SELECT 1 FROM ${quoteTable(t.name)} WHERE ${quoteIdent(column)} = $1 LIMIT 1`;
}

/** The row's primary key values (from the old key when the stream sent one: an UPDATE may change the key). */
export function keyOf(t: TableModel, row: Row, old?: Row | null): string[] {
  return t.info.primaryKey.map((k) => {
    const v = old?.[k] ?? row[k];
    if (v === undefined || v === null) throw new Error(`internal: ${t.name}: no value for key column ${k}`);
    return v;
  });
}

/**
 * A table without a primary key (REPLICA IDENTITY FULL): a row is known only by all its values.
 * `fullRowSql` is the row of `alias` as one jsonb array of each column's text as its type's output
 * function prints it (format('%s'), not a cast to text: char(n) keeps its padding, as the stream
 * sends it), NULL as JSON null; `fullRowOf` is the same array of a streamed row. Equal arrays are
 * equal rows, NULLs included (NULL-safe), whatever the column types (json, point: no = needed).
 */
export function fullRowSql(t: TableModel, alias: string): string {
  return `jsonb_build_array(${t.columns.map((c) => `CASE WHEN ${alias}.${quoteIdent(c)} IS NULL THEN NULL ELSE format('%s', ${alias}.${quoteIdent(c)}) END`).join(', ')})`;
}

export function fullRowOf(t: TableModel, row: Row): (string | null)[] {
  return t.columns.map((c) => {
    const v = row[c];
    if (v === undefined) throw new Error(`internal: ${t.name}: the streamed row has no value for ${c}`);
    return v;
  });
}

/** Updates ONE row equal to $last (a fullRowOf array as JSON) — any one of identical rows: they are alike. */
export function updateOneSql(t: TableModel, set: readonly string[]): string {
  const assign = set.map((c, i) => `${quoteIdent(c)} = $${i + 1}`).join(', ');
  return `UPDATE ${quoteTable(t.name)} AS x SET ${assign} FROM (${oneRow(t, set.length + 1)}) AS m WHERE x.tableoid = m.o AND x.ctid = m.c`;
}

/** Deletes ONE row equal to $1 (a fullRowOf array as JSON). */
export function deleteOneSql(t: TableModel): string {
  return `DELETE FROM ${quoteTable(t.name)} AS x USING (${oneRow(t, 1)}) AS m WHERE x.tableoid = m.o AND x.ctid = m.c`;
}

// tableoid with ctid: a partitioned table's partitions each have their own ctids
const oneRow = (t: TableModel, param: number) =>
  `SELECT y.tableoid AS o, y.ctid AS c FROM ${quoteTable(t.name)} AS y WHERE ${fullRowSql(t, 'y')} = $${param}::jsonb LIMIT 1`;

/** The columns an UPDATE sets: those the stream carried ('u', an unchanged TOASTed value, is left alone). */
export const setColumns = (row: Row): string[] => Object.keys(row).filter((c) => row[c] !== undefined);

/** An UPDATE by key of the columns the stream carried: updateSql's text and values. */
export function updateByKey(t: TableModel, row: Row, key: readonly string[]): { text: string; values: (string | null | undefined)[] } {
  const set = setColumns(row);
  return { text: updateSql(t, set), values: [...set.map((c) => row[c]), ...key] };
}
