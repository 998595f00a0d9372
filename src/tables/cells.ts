import type pg from 'pg';
import type { H3Strategy } from '../config/types.js';
import { copyLineChunks, copyLinesInto } from '../copy/pipe.js';
import { quoteIdent, quoteTable } from '../db/ident.js';
import { CellMemo } from '../cells/cell-memo.js';

/**
 * lat/lng tables have no cell column, and SQL cannot compute an H3 cell without an extension. So a
 * session that works on such a table first streams (pk, lat, lng) through Node, computes each row's
 * shard cell with the very function the router uses, and loads (pk, cell) into a temp table of its
 * own session; every query then joins that table (see scope.ts). Memory stays flat: rows stream
 * through, nothing is collected.
 */
export interface CellTableSpec {
  readonly table: string; // schema.table
  readonly pk: string;
  readonly pkType: string;
  readonly lat: string;
  readonly lng: string;
}

export function cellTempName(table: string): string {
  return `pg_temp.${quoteIdent(`shardctl_cells_${table.replace(/\W/g, '_')}`)}`;
}

/** Creates (or empties) the session's temp table of `spec`; returns its name. */
export async function emptyCellTemp(session: pg.ClientBase, spec: CellTableSpec): Promise<string> {
  const temp = cellTempName(spec.table);
  await session.query(`CREATE TEMP TABLE IF NOT EXISTS ${temp} (pk ${spec.pkType} PRIMARY KEY, cell text NOT NULL)`);
  await session.query(`TRUNCATE ${temp}`);
  return temp;
}

/**
 * (pk, cell) COPY lines of the rows `reader` streams as (pk, lat, lng), each point's cell computed
 * once (cell-memo.ts); each item holds the lines of one chunk of the stream. `counts`, if given,
 * gets the lines of each cell. The fields are read in place, with no array per row: COPY's text
 * format escapes tabs and newlines inside a value, so the first tab ends the key.
 */
export async function* cellLines(
  reader: pg.ClientBase,
  spec: CellTableSpec,
  strategy: H3Strategy,
  o: { cells?: ReadonlySet<string>; counts?: Map<string, number> } = {},
): AsyncGenerator<string> {
  const { cells, counts } = o;
  const select = `SELECT ${[spec.pk, spec.lat, spec.lng].map(quoteIdent).join(', ')} FROM ${quoteTable(spec.table)}`;
  const memo = new CellMemo({ indexResolution: strategy.indexResolution, shardResolution: strategy.shardResolution });
  const onNull = () => new Error(`${spec.table}: a row has a NULL ${spec.lat}/${spec.lng}`);
  for await (const text of copyLineChunks(reader, select)) {
    let lines = '';
    for (let start = 0; start < text.length; ) {
      let end = text.indexOf('\n', start);
      if (end < 0) end = text.length;
      // the key ends at the first tab, the point follows
      const keyEnd = text.indexOf('\t', start);
      const cell = memo.cellOfPoint(text.slice(keyEnd + 1, end), onNull);
      if (!cells || cells.has(cell)) {
        lines += `${text.slice(start, keyEnd + 1)}${cell}\n`;
        if (counts) counts.set(cell, (counts.get(cell) ?? 0) + 1);
      }
      start = end + 1;
    }
    if (lines) yield lines;
  }
}

/**
 * Fills the temp table of `spec` in `session` with the rows `reader` sees whose cell is in `cells`
 * (all rows when undefined). `reader` must see the same data as `session` (the same snapshot, or
 * committed data that nothing changes meanwhile). Returns the row count loaded.
 */
export async function materializeCells(
  session: pg.ClientBase,
  reader: pg.ClientBase,
  spec: CellTableSpec,
  strategy: H3Strategy,
  cells?: ReadonlySet<string>,
): Promise<number> {
  const temp = await emptyCellTemp(session, spec);
  const n = await copyLinesInto(session, `${temp} (pk, cell)`, cellLines(reader, spec, strategy, { cells }));
  await session.query(`ANALYZE ${temp}`);
  return n;
}
