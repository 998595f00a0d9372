import type { Config, TableConfig } from '../config/types.js';
import { descendantRange } from '../cells/h3.js';
import { quoteIdent, quoteTable, textArrayLiteral } from '../db/ident.js';
import { multiRouteScope } from './routes.js';
import { parentCellSql, qualifiedName, type Scope, type ScopeContext } from './scope-base.js';

export { parentCellSql, qualifiedName, type Scope, type ScopeContext } from './scope-base.js';

/** The chain from `table` up to the table whose route decides the unit. */
export function routeChain(config: Config, table: TableConfig): TableConfig[] {
  const chain = [table];
  let t = table;
  while (t.route.kind === 'via') {
    const parentName = t.route.parent;
    const parent = config.tables.find((p) => `${p.schema}.${p.name}` === parentName);
    if (!parent) throw new Error(`internal: parent ${parentName} of ${t.name} not in config`);
    chain.push(parent);
    t = parent;
  }
  return chain;
}

/** Builds the scope of `table` for `units` (undefined = all units). */
export function scopeOf(ctx: ScopeContext, table: TableConfig, units?: readonly string[]): Scope {
  if (table.routes) return multiRouteScope(ctx, table, units);
  const chain = routeChain(ctx.config, table);
  const using: string[] = [];
  const joins: string[] = [];
  chain.forEach((t, i) => {
    if (i === 0) return;
    const child = chain[i - 1]!;
    if (child.route.kind !== 'via') throw new Error('internal: broken via chain');
    using.push(`${quoteTable(qualifiedName(t))} AS t${i}`);
    joins.push(`t${i}.${quoteIdent(child.route.parentColumn)} = t${i - 1}.${quoteIdent(child.route.column)}`);
  });
  const root = chain[chain.length - 1]!;
  const r = `t${chain.length - 1}`;
  const st = ctx.config.strategy;
  let unit: string;
  let key: string | undefined;
  let filter = 'TRUE';
  switch (root.route.kind) {
    case 'key': {
      const col = `${r}.${quoteIdent(root.route.column)}`;
      const type = ctx.keyType(qualifiedName(root));
      unit = `${col}::text`;
      // integers only: equal values have equal text (not so numeric's 1.0 and 1.00, two units)
      if (/^(smallint|integer|bigint)$/.test(type)) key = col;
      if (units) filter = `${col} = ANY(${textArrayLiteral(units)}::${type}[])`;
      break;
    }
    case 'cell': {
      if (st.kind !== 'h3') throw new Error('internal: cell route without h3 strategy');
      const col = `${r}.${quoteIdent(root.route.column)}`;
      unit = parentCellSql(col, st.shardResolution);
      if (units) filter = cellFilter(col, unit, units, root.route.resolution, st.shardResolution);
      break;
    }
    case 'latlng': {
      // The session's cell table holds (pk, cell) for exactly the rows in scope: the join is the filter.
      const { temp, pk } = ctx.cellTable(qualifiedName(root));
      const i = chain.length;
      using.push(`${temp} AS t${i}`);
      joins.push(`t${i}.pk = ${r}.${quoteIdent(pk)}`);
      unit = `t${i}.cell`;
      if (units) filter = `t${i}.cell = ANY(${textArrayLiteral(units)})`;
      break;
    }
    default:
      throw new Error(`internal: table ${root.name} has no unit route`);
  }
  const from = [`${quoteTable(qualifiedName(table))} AS t0`, ...using.map((u, i) => `JOIN ${u} ON ${joins[i]}`)].join(' ');
  return { from, using, joins, unit, key, filter };
}

/**
 * The rows of an H3 index column in `units`. A few units: one index range per unit (their
 * descendants at the column's resolution). Many: one range from the first to the last unit's
 * descendants (still an index range where a batch's cells are neighbours) and the row's own cell
 * hashed against the list, so a row costs one lookup, not one comparison per unit (a batch of
 * 5,000 cells was 5,000 ORs per row). The same rows either way: the preflight refuses indexes of
 * another resolution, and an index in a unit's range has that unit as its parent (parentCellSql).
 */
function cellFilter(col: string, unitSql: string, units: readonly string[], res: number, unitRes: number): string {
  if (!units.length) return 'FALSE';
  const ranges = units.map((u) => descendantRange(u, res));
  if (units.length <= 16) return `(${ranges.map(({ lo, hi }) => `${col} BETWEEN ${lo} AND ${hi}`).join(' OR ')})`;
  const below = (1n << BigInt(3 * (15 - unitRes))) - 1n; // every index sharing a unit's prefix, invalid digits included
  const lo = ranges.reduce((m, r) => (r.lo < m ? r.lo : m), ranges[0]!.lo);
  const hi = ranges.reduce((m, r) => ((r.lo | below) > m ? r.lo | below : m), ranges[0]!.lo | below);
  return `(${col} BETWEEN ${lo} AND ${hi} AND ${unitSql} = ANY(${textArrayLiteral(units)}))`;
}

/**
 * One row per unit of the scope's rows: `unit` and the named aggregates (name → SQL). An integer
 * key is grouped as itself and only the groups' keys are made text: casting every row to text
 * before grouping cost 2.5× the grouping (pgbench_accounts, 800k rows: 0.110 → 0.044 s).
 */
export function groupedByUnit(scope: Scope, aggregates: Readonly<Record<string, string>>): string {
  const aggs = Object.entries(aggregates).map(([name, sql]) => `${sql} AS ${name}`).join(', ');
  const rest = `FROM ${scope.from} WHERE ${scope.filter} GROUP BY 1`;
  if (!scope.key) return `SELECT ${scope.unit} AS unit, ${aggs} ${rest}`;
  return `SELECT g.k::text AS unit, ${Object.keys(aggregates).map((n) => `g.${n}`).join(', ')} FROM (SELECT ${scope.key} AS k, ${aggs} ${rest}) g`;
}

/** SELECT of the given columns of t0 for the scope (the body of a COPY … TO STDOUT). */
export function selectSql(scope: Scope, columns: readonly string[]): string {
  const cols = columns.map((c) => `t0.${quoteIdent(c)}`).join(', ');
  return `SELECT ${cols} FROM ${scope.rows ?? scope.from} WHERE ${scope.filter}`;
}

/** DELETE of the scope's rows of t0 (children are deleted before parents, so the joins still find them). */
export function deleteSql(table: TableConfig, scope: Scope): string {
  const using = scope.using.length ? ` USING ${scope.using.join(', ')}` : '';
  const where = [...scope.joins, scope.filter].join(' AND ');
  return `DELETE FROM ${quoteTable(qualifiedName(table))} AS t0${using} WHERE ${where}`;
}
