import type pg from 'pg';
import type { Model, TableModel } from '../tables/model.js';
import { groupedByUnit, scopeOf } from '../tables/scope.js';
import { forEachPage, PAGE_ROWS } from '../db/pages.js';

/** Every unit once, with its rows and bytes over all the tables, in parallel arrays. */
export interface UnitTotals {
  readonly units: string[];
  readonly rows: number[];
  readonly bytes: number[];
  /** per table: its rows and bytes summed over its units */
  readonly tables: Map<string, { rows: number; bytes: number }>;
  /** per table with any: its rows of no unit (a NULL routing key or cell, every route NULL), not in `units` */
  readonly noUnit: Map<string, number>;
}

// int8 and numeric as the server's text: Number() of it is exact below 2^53, without pg's checks per value
const rawText = { getTypeParser: () => (value: string) => value };

/**
 * What `plan` needs of the inventory, at a million units: the server sums each unit over the tables
 * (one grouped query; GROUPING SETS add the per-table totals in the same scan), and the rows come
 * through a cursor in pages into plain arrays, so memory holds the result and one page — not a
 * million row objects, a Map and a per-table list per unit (`takeInventory`).
 * Bytes are pg_column_size of the row, as there. Needs `session` outside a transaction.
 */
export async function unitTotals(session: pg.ClientBase, model: Model, tables: readonly TableModel[], page = PAGE_ROWS): Promise<UnitTotals> {
  const out: UnitTotals = { units: [], rows: [], bytes: [], tables: new Map(tables.map((t) => [t.name, { rows: 0, bytes: 0 }])), noUnit: new Map() };
  if (!tables.length) return out;
  const grouped = tables.map((t, i) => {
    const scope = scopeOf(model.ctx, t.config);
    return `SELECT ${i} AS t, g.unit, g.rows, g.bytes FROM (${groupedByUnit(scope, { rows: 'count(*)', bytes: 'sum(pg_column_size(t0.*))' })}) g`;
  });
  // one table: its groups are the units already; several: summed per unit, and per table (unit NULL)
  const text =
    grouped.length === 1
      ? grouped[0]!
      : `SELECT t, unit, sum(rows) AS rows, sum(bytes) AS bytes, GROUPING(unit) AS per_table, sum(rows) FILTER (WHERE unit IS NULL) AS no_unit
           FROM (${grouped.join(' UNION ALL ')}) AS v GROUP BY GROUPING SETS ((unit), (t))`;
  const perTable = [...out.tables.values()];
  const onPage = (rows: [string | null, string | null, string, string | null, string?, (string | null)?][]) => {
    for (const [t, unit, count, sum, sumRow, noUnit] of rows) {
      const r = Number(count);
      const b = sum === null ? 0 : Number(sum);
      if (sumRow === '1') {
        const i = Number(t);
        perTable[i]!.rows = r;
        perTable[i]!.bytes = b;
        if (noUnit) out.noUnit.set(tables[i]!.name, Number(noUnit));
        continue;
      }
      if (unit === null) {
        // one table: its NULL group; several: the NULL groups summed, which the per-table rows split
        if (grouped.length === 1) out.noUnit.set(tables[0]!.name, r);
        continue;
      }
      out.units.push(unit);
      out.rows.push(r);
      out.bytes.push(b);
      if (grouped.length === 1) {
        perTable[0]!.rows += r;
        perTable[0]!.bytes += b;
      }
    }
  };
  await forEachPage(session, text, onPage, { page, types: rawText });
  return out;
}
