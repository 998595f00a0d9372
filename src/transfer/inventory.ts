import type pg from 'pg';
import type { Model, TableModel } from '../tables/model.js';
import { materializeCells } from '../tables/cells.js';
import { h3Strategy } from '../tables/model.js';
import { scopeOf } from '../tables/scope.js';

export interface TableVolume {
  rows: bigint;
  bytes: bigint;
}

export interface UnitVolume extends TableVolume {
  readonly unit: string;
  /**
   * per table (schema.table): a short list, not a Map — an inventory holds one per unit, and a
   * million Maps cost a plan of a million tenants seconds of allocation (bench --fixture plan)
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
  opts: { bytes?: boolean } = {},
): Promise<Map<string, UnitVolume>> {
  const units = new Map<string, UnitVolume>();
  for (const t of tables) {
    const scope = scopeOf(model.ctx, t.config);
    const bytes = opts.bytes ? 'sum(pg_column_size(t0.*))' : '0';
    const r = await session.query<{ unit: string; rows: string; bytes: string }>(
      `SELECT ${scope.unit} AS unit, count(*) AS rows, ${bytes} AS bytes FROM ${scope.from} WHERE ${scope.filter} GROUP BY 1`,
    );
    addVolumes(units, t.name, r.rows);
  }
  return units;
}

/** Adds one table's grouped (unit, rows, bytes) to the inventory. */
export function addVolumes(units: Map<string, UnitVolume>, table: string, rows: readonly { unit: string; rows: string; bytes: string | null }[]): void {
  for (const row of rows) {
    const v = { table, rows: BigInt(row.rows), bytes: BigInt(row.bytes ?? 0) };
    const u = units.get(row.unit);
    if (!u) {
      units.set(row.unit, { unit: row.unit, rows: v.rows, bytes: v.bytes, tables: [v] });
      continue;
    }
    u.tables.push(v);
    u.rows += v.rows;
    u.bytes += v.bytes;
  }
}

/** Tables whose route decides units directly (not through a parent): enough to list every unit. */
export const rootTables = (model: Model) => model.sharded.filter((t) => t.config.route.kind !== 'via');

/** Loads the (pk, cell) table of every lat/lng table into `session`, reading through `reader`. */
export async function prepareCells(session: pg.ClientBase, reader: pg.ClientBase, model: Model, cells?: ReadonlySet<string>): Promise<void> {
  for (const spec of model.cellSpecs) await materializeCells(session, reader, spec, h3Strategy(model.config), cells);
}
