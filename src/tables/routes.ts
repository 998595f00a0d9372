import type { TableConfig, UnitRoute } from '../config/types.js';
import { descendantRange } from '../cells/h3.js';
import { quoteIdent, quoteTable, textArrayLiteral } from '../db/ident.js';
import { parentCellSql, qualifiedName, type Scope, type ScopeContext } from './scope-base.js';

/**
 * Tables with several routes (`routes:` in the config, e.g. a bump routed by each participant's
 * cell): a row belongs to the unit of EVERY route, so the rows of a set of units are those with
 * any route into it, and a grouped query counts a row once under each of its distinct units.
 *
 * The placement rule, one line: a shard holds a row exactly when one of the row's units lives there.
 * The helpers below are that rule in SQL, for migrate, verify and rebalance alike.
 */

/** SQL text of the unit one route gives a row of `t0` (NULL when its column is NULL). */
export function routeUnitSql(ctx: ScopeContext, route: UnitRoute, alias = 't0'): string {
  const st = ctx.config.strategy;
  switch (route.kind) {
    case 'key':
      return `${alias}.${quoteIdent(route.column)}::text`;
    case 'cell':
      if (st.kind !== 'h3') throw new Error('internal: cell route without h3 strategy');
      return parentCellSql(`${alias}.${quoteIdent(route.column)}`, st.shardResolution);
    case 'latlng':
      throw new Error('internal: lat/lng routes are not supported in a table with several routes');
  }
}

/** SQL condition: this route leads into `units` (index-friendly: = ANY on the key, BETWEEN on the H3 index). */
export function routeFilterSql(ctx: ScopeContext, table: TableConfig, route: UnitRoute, units: readonly string[], alias = 't0'): string {
  switch (route.kind) {
    case 'key':
      return `${alias}.${quoteIdent(route.column)} = ANY(${textArrayLiteral(units)}::${ctx.keyType(qualifiedName(table), route.column)}[])`;
    case 'cell': {
      const col = `${alias}.${quoteIdent(route.column)}`;
      const ranges = units.map((u) => descendantRange(u, route.resolution)).map(({ lo, hi }) => `${col} BETWEEN ${lo} AND ${hi}`);
      return ranges.length ? `(${ranges.join(' OR ')})` : 'FALSE';
    }
    case 'latlng':
      throw new Error('internal: lat/lng routes are not supported in a table with several routes');
  }
}

/** SQL text[] of a row's units, one per route, in route order (duplicates and NULLs kept). */
export function unitsArraySql(ctx: ScopeContext, table: TableConfig, alias = 't0'): string {
  return `ARRAY[${table.routes!.map((r) => routeUnitSql(ctx, r, alias)).join(', ')}]::text[]`;
}

/**
 * The scope of a table with several routes. `rows` (FROM of the rows themselves) serves copies and
 * deletes; `from` adds a lateral fan-out giving each row one `tu.unit` per distinct unit (restricted
 * to `units` when given), so every grouped query — checksums, inventories — counts a row under each
 * unit it belongs to. A row whose routes are all NULL keeps one NULL unit: an orphan, never dropped.
 */
export function multiRouteScope(ctx: ScopeContext, table: TableConfig, units?: readonly string[]): Scope {
  const routes = table.routes!;
  const each = routes.map((r) => routeUnitSql(ctx, r));
  const arr = unitsArraySql(ctx, table);
  const only = units ? ` AND x = ANY(${textArrayLiteral(units)}::text[])` : '';
  const fanout =
    `CROSS JOIN LATERAL (SELECT DISTINCT x FROM unnest(${arr}) AS x WHERE x IS NOT NULL${only}` +
    (units ? '' : ` UNION ALL SELECT NULL WHERE num_nonnulls(${each.join(', ')}) = 0`) +
    `) AS tu(unit)`;
  const rows = `${quoteTable(qualifiedName(table))} AS t0`;
  const filter = units ? `(${routes.map((r) => routeFilterSql(ctx, table, r, units)).join(' OR ')})` : 'TRUE';
  return { from: `${rows} ${fanout}`, rows, using: [], joins: [], unit: 'tu.unit', filter, units: arr };
}
