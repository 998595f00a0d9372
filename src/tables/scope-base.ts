import type { Config, TableConfig } from '../config/types.js';

// What scope.ts and routes.ts (tables with several routes) share: apart, so neither imports the other back.

/**
 * Which rows of a table belong to which unit, as SQL. A table reaches its unit directly (a key
 * column, an H3 index column, or lat/lng through a per-session cell table) or through a chain of
 * `via` parents. The chain becomes joins t0 (the table) → t1 (its parent) → …; the root's route
 * gives the unit expression and the filter for a set of units.
 */
export interface Scope {
  /** `"public"."order_items" AS t0 JOIN "public"."orders" AS t1 ON t1."id" = t0."order_id"` */
  readonly from: string;
  /** the tables after t0 and their join conditions, for DELETE … USING */
  readonly using: readonly string[];
  readonly joins: readonly string[];
  /** SQL text of the unit a row belongs to */
  readonly unit: string;
  /** an integer key: `unit` is its text, and grouping by the key itself is cheaper (groupedByUnit) */
  readonly key?: string;
  /** SQL condition restricting to the given units (or `TRUE` for every unit) */
  readonly filter: string;
  /**
   * Tables with several routes (routes.ts): `from` fans each row out to one row per unit (for
   * grouped queries); `rows` is the FROM of the rows themselves (for copies), `units` the SQL text[]
   * of a row's units.
   */
  readonly rows?: string;
  readonly units?: string;
}

export interface ScopeContext {
  readonly config: Config;
  /** key column type per table (format_type), so a text[] of units can be cast to it; `column` for a table with several routes */
  keyType(table: string, column?: string): string;
  /** lat/lng tables: the temp table holding (pk, cell) of this session, and the table's pk column */
  cellTable(table: string): { temp: string; pk: string };
}

export const qualifiedName = (t: TableConfig) => `${t.schema}.${t.name}`;

/**
 * The parent of an H3 index at `res`, in SQL: set the resolution field to `res` and every digit
 * below it to 7 (unused). Pure bit arithmetic on bigint, so a bigint index column is grouped by
 * its shard cell on the server.
 */
export function parentCellSql(col: string, res: number): string {
  const digitsBelow = (1n << BigInt(3 * (15 - res))) - 1n;
  const resField = 15n << 52n;
  const keep = ~(resField | digitsBelow) & ((1n << 63n) - 1n);
  return `lower(to_hex((${col} & ${keep}) | ${(BigInt(res) << 52n) | digitsBelow}))`;
}
