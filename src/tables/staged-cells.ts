import type pg from 'pg';
import { copyLinesInto, pipeCopy } from '../copy/pipe.js';
import { quoteIdent, textArrayLiteral } from '../db/ident.js';
import { cellLines, cellTempName } from './cells.js';
import { h3Strategy, type Model } from './model.js';

/**
 * The cells of a run's lat/lng tables, computed ONCE per run into UNLOGGED tables on the source
 * (schema `shardctl`, indexed by cell), so each batch reads only its own rows' (pk, cell) instead
 * of streaming the whole table through Node again: the cost is linear in the table, not
 * batches × rows.
 *
 * Exactness rests on one snapshot: the staging is computed from the run's exported snapshot, and
 * every batch reads the source through that very snapshot (SET TRANSACTION SNAPSHOT), so a row's
 * staged cell is the cell of the row the batch copies. The staging is written after that snapshot,
 * by COPY FREEZE into the table its own transaction created: frozen rows are visible to every
 * snapshot, the run's too, so a batch's source sessions join the staging where it is (through a
 * temporary view named as the scopes expect, linkStagedCells), with no copy of their own. A shard
 * session fetches its batch's rows into a temporary table on a fresh source connection
 * (loadStagedCells). Each batch also counts the rows it copies of a lat/lng table against the
 * staged counts of its cells (the copy stops on any difference), so a staging the batch could not
 * see would fail the batch, never copy it empty.
 */
export interface StagedCells {
  /** schema.table of a lat/lng table → its staging table (quoted) */
  readonly tables: ReadonlyMap<string, string>;
  /** schema.table → its staged rows per cell (the inventory of a lat/lng table, counted as they were staged) */
  readonly counts: ReadonlyMap<string, ReadonlyMap<string, number>>;
  /**
   * The staging's indexes and statistics, built on the writer after its rows are committed, while
   * the run prepares its batches; a batch reads the staging once they are (linkStagedCells,
   * loadStagedCells). The writer is the caller's to end once this settles.
   */
  readonly indexed: Promise<void>;
}

const SCHEMA = 'shardctl';

/** `"shardctl"."migrate_cells_public_locations"`: one per table, owned by the migrate run holding the catalog lock. */
export function stagingName(table: string): string {
  const base = `migrate_cells_${table.replace(/\W/g, '_')}`;
  // identifiers are cut at 63 bytes: keep distinct long names distinct
  const name = base.length <= 63 ? base : `${base.slice(0, 50)}_${hash(table)}`;
  return `${quoteIdent(SCHEMA)}.${quoteIdent(name)}`;
}

/**
 * Computes (pk, cell) of every row of every lat/lng table as `reader` sees it (the run snapshot) into
 * the staging tables, written on `writer` (autocommit). Replaces what a crashed run left. Returns
 * undefined when the role may not create the schema or tables there: the caller then computes
 * cells per batch, as before (correct, but batches × rows).
 */
export async function stageCells(
  writer: pg.ClientBase,
  reader: pg.ClientBase,
  model: Model,
  onTable?: (table: string, rows: number, seconds: number) => void,
): Promise<StagedCells | undefined> {
  try {
    await writer.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(SCHEMA)}`);
  } catch (e) {
    if (mayNot(e)) return undefined;
    throw e;
  }
  const tables = new Map<string, string>();
  const counts = new Map<string, Map<string, number>>();
  for (const spec of model.cellSpecs) {
    const name = stagingName(spec.table);
    const t0 = performance.now();
    const perCell = new Map<string, number>();
    await writer.query('BEGIN');
    let rows: number;
    try {
      await writer.query(`DROP TABLE IF EXISTS ${name}`);
      try {
        await writer.query(`CREATE UNLOGGED TABLE ${name} (pk ${spec.pkType} NOT NULL, cell text NOT NULL)`);
      } catch (e) {
        if (mayNot(e)) {
          await writer.query('ROLLBACK');
          return undefined;
        }
        throw e;
      }
      // FREEZE (the table is this transaction's own): visible to the run snapshot, which predates it
      // (the COPY is all or nothing: the lines counted are the staged rows, without a GROUP BY over them)
      rows = await copyLinesInto(writer, `${name} (pk, cell)`, cellLines(reader, spec, h3Strategy(model.config), { counts: perCell }), 'FREEZE');
      await writer.query('COMMIT');
    } catch (e) {
      await writer.query('ROLLBACK').catch(() => undefined);
      throw e;
    }
    tables.set(spec.table, name);
    counts.set(spec.table, perCell);
    onTable?.(spec.table, rows, (performance.now() - t0) / 1000);
  }
  const indexed = (async () => {
    for (const name of tables.values()) {
      // (cell) INCLUDE (pk) and a vacuumed visibility map: a batch's read is an index-only scan
      await writer.query(`CREATE INDEX ON ${name} (cell) INCLUDE (pk)`);
      await writer.query(`VACUUM (ANALYZE) ${name}`);
    }
  })();
  indexed.catch(() => undefined); // awaited by every batch, and by the caller before the staging is dropped
  return { tables, counts, indexed };
}

/**
 * Loads a shard session's temp cell tables with the staged (pk, cell) of `cells` (every cell when
 * undefined), read on `reader`, a source connection.
 */
export async function loadStagedCells(session: pg.ClientBase, reader: pg.ClientBase, model: Model, staged: StagedCells, cells?: readonly string[]): Promise<void> {
  await staged.indexed;
  for (const spec of model.cellSpecs) {
    // The primary key is built after the load: one sort, not a b-tree insert per row (a batch of
    // the cities bench, 42,500 rows: 25-30 ms against 80-160 ms the COPY into the keyed table took).
    const temp = cellTempName(spec.table);
    await session.query(`DROP TABLE IF EXISTS ${temp}; CREATE TEMP TABLE ${temp} (pk ${spec.pkType} NOT NULL, cell text NOT NULL)`);
    const where = cells ? ` WHERE cell = ANY(${textArrayLiteral(cells)})` : '';
    // binary: the staging's columns are the temp table's very types (the primary key's, text)
    await pipeCopy(reader, session, `SELECT pk, cell FROM ${staged.tables.get(spec.table)!}${where}`, `${temp} (pk, cell)`, undefined, 'binary');
    // Not analyzed: the planner sizes the fresh table from its pages, and its primary key tells it
    // the join to the table is one to one; the plan is the same without the ANALYZE's 40-140 ms a
    // session (three sessions a batch; EXPLAIN ANALYZE on the cities bench).
    await session.query(`ALTER TABLE ${temp} ADD PRIMARY KEY (pk)`);
  }
}

/**
 * A source session in the run snapshot reads the staging itself (its rows are frozen): each lat/lng
 * table's cell "table" of the scopes becomes a temporary view of the staging. The scopes' filter
 * on the batch's cells selects its rows by the staging's index.
 */
export async function linkStagedCells(session: pg.ClientBase, model: Model, staged: StagedCells): Promise<void> {
  await staged.indexed;
  for (const spec of model.cellSpecs) {
    await session.query(`CREATE OR REPLACE TEMP VIEW ${cellTempName(spec.table)} AS SELECT pk, cell FROM ${staged.tables.get(spec.table)!}`);
  }
}

/** How many rows the staging holds in `cells` of `table` (the rows a batch of those cells copies). */
export function stagedRows(staged: StagedCells, table: string, cells: readonly string[]): number | undefined {
  const perCell = staged.counts.get(table);
  if (!perCell) return undefined;
  let n = 0;
  for (const c of cells) n += perCell.get(c) ?? 0;
  return n;
}

export async function dropStagedCells(c: pg.ClientBase, staged: StagedCells): Promise<void> {
  for (const name of staged.tables.values()) await c.query(`DROP TABLE IF EXISTS ${name}`);
}

/** no privilege (42501), or a read-only server such as a standby (25006) */
const mayNot = (e: unknown) => ['42501', '25006'].includes((e as { code?: string }).code ?? '');

function hash(s: string): string {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0;
  return h.toString(16).padStart(8, '0');
}
