import type pg from 'pg';
import type { Model, TableModel } from '../tables/model.js';
import { materializeCells } from '../tables/cells.js';
import { h3Strategy } from '../tables/model.js';
import { groupedByUnit, scopeOf } from '../tables/scope.js';
import { copyRowChunks } from '../copy/pipe.js';
import { decodeCopyField } from '../copy/text-field.js';

/** Row counts and byte sums as numbers: exact below 2^53 (9 PB), and every consumer sums them as numbers. */
export interface TableVolume {
  rows: number;
  bytes: number;
}

export interface UnitVolume extends TableVolume {
  readonly unit: string;
  /**
   * per table (schema.table): a short list, not a Map — an inventory holds one per unit, and a
   * million Maps cost an inventory of a million tenants seconds of allocation (measured in plan, which
   * now sums per unit on the server instead: src/plan/volumes.ts)
   */
  readonly tables: (TableVolume & { readonly table: string })[];
}

/**
 * Counts rows (and, when asked, bytes) of every unit in `tables`, grouped on the server. Bytes are
 * pg_column_size of the row: the on-disk tuple size, without indexes or TOAST overhead. lat/lng
 * tables need their cell tables in `session` first (`prepareCells`).
 */
export async function takeInventory(
  session: pg.ClientBase,
  model: Model,
  tables: readonly TableModel[],
  /** `nulls`: rows of no unit (a NULL key or cell) are counted there per table instead of listed */
  opts: { bytes?: boolean; nulls?: Map<string, number> } = {},
): Promise<Map<string, UnitVolume>> {
  const units = new Map<string, UnitVolume>();
  await readGrouped(session, model, tables, Boolean(opts.bytes), (table, unit, rows, bytes) => addVolume(units, table, unit, rows, bytes), opts.nulls);
  return units;
}

/**
 * Rows per unit over `tables`, and nothing else: what migrate needs of its inventory (batch sizes,
 * progress totals). A number per unit instead of two objects and a list (takeInventory): at 200,000
 * tenants those allocations were most of the inventory's time in Node, and lived all run (issue 26).
 */
export async function countUnits(
  session: pg.ClientBase,
  model: Model,
  tables: readonly TableModel[],
  /** `nulls`: rows of no unit (a NULL key or cell) are counted there per table */
  opts: { nulls?: Map<string, number> } = {},
): Promise<Map<string, number>> {
  const units = new Map<string, number>();
  await readGrouped(session, model, tables, false, (_, unit, rows) => units.set(unit, (units.get(unit) ?? 0) + rows), opts.nulls);
  return units;
}

/** Adds one table's grouped (unit, rows, bytes) to the row counts of countUnits. */
export function addCounts(units: Map<string, number>, rows: readonly VolumeRow[]): void {
  for (const [unit, count] of rows) units.set(unit, (units.get(unit) ?? 0) + Number(count));
}

/** Each table's grouped (unit, rows, bytes) to `add` as they stream in; rows of no unit counted per table in `nulls`. */
async function readGrouped(
  session: pg.ClientBase,
  model: Model,
  tables: readonly TableModel[],
  withBytes: boolean,
  add: (table: string, unit: string, rows: number, bytes: number) => void,
  nulls?: Map<string, number>,
): Promise<void> {
  for (const t of tables) {
    const scope = scopeOf(model.ctx, t.config);
    const bytes = withBytes ? 'sum(pg_column_size(t0.*))' : '0';
    // read as a COPY, a chunk of rows at a time: a million tenants are a million result rows, and
    // an object per row, then a result array searched and filtered whole, were most of the
    // inventory's time in Node (200,000 units: 0.168 CPU s as query rows, 0.106 s as COPY chunks)
    let none = 0;
    for await (const chunk of copyRowChunks(session, groupedByUnit(scope, { rows: 'count(*)', bytes }))) {
      for (const [unit, count, sum] of chunk) {
        if (unit === '\\N') none += Number(count);
        else add(t.name, decodeCopyField(unit!), Number(count), sum === '\\N' ? 0 : Number(sum));
      }
    }
    nulls?.set(t.name, none);
  }
}

/** One grouped row, as the server sends it: unit, row count, byte sum (int8/numeric text). */
export type VolumeRow = readonly [unit: string, rows: string, bytes: string | null];

function addVolume(units: Map<string, UnitVolume>, table: string, unit: string, rows: number, bytes: number): void {
  const v = { table, rows, bytes };
  const u = units.get(unit);
  if (!u) {
    units.set(unit, { unit, rows, bytes, tables: [v] });
    return;
  }
  u.tables.push(v);
  u.rows += rows;
  u.bytes += bytes;
}

/** Tables whose route decides units directly (not through a parent): enough to list every unit. */
export const rootTables = (model: Model) => model.sharded.filter((t) => t.config.route.kind !== 'via');

/** Loads the (pk, cell) table of every lat/lng table into `session`, reading through `reader`. */
export async function prepareCells(session: pg.ClientBase, reader: pg.ClientBase, model: Model, cells?: ReadonlySet<string>): Promise<void> {
  for (const spec of model.cellSpecs) await materializeCells(session, reader, spec, h3Strategy(model.config), cells);
}
