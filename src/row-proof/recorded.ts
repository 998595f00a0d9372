import type pg from 'pg';
import type { TableConfig } from '../config/types.js';
import { quoteIdent, quoteTable } from '../db/ident.js';
import { rowHashSql } from '../tables/row-hash.js';
import { columnType, type Model, type TableModel } from '../tables/model.js';
import { qualifiedName, routeChain } from '../tables/scope.js';

/**
 * The reading half of every proof of recorded rows (follow_dirty): cutover and the prover
 * (changed.ts: the monolith against every shard) and a move's proof (rebalance/unit-changed.ts:
 * the old shard against the new one) all read, on each server, the rows under the recorded keys of
 * a keyed table, in chunks of keys, each chunk in one statement (one snapshot per server), with each
 * row's hash and, where asked, the route values of its chain's root row (a `via` row's unit is its
 * root's, joined on the same server, as the copy scopes rows). What a difference means is theirs.
 */

/** Keys read per statement. */
export const KEY_CHUNK = 2000;

/** A row found under a recorded key. */
export interface FoundRow {
  /** its primary key as PostgreSQL prints it: `(k1, k2)` (a key recorded in another spelling still matches) */
  key: string;
  /** rowHashSql's hash of the row (the same on every server) */
  hash: string;
  /** the route columns' text of its chain's root row (null: no root row on that server); empty unless asked */
  root: (string | null)[];
}

/** The root of `t`'s via chain (itself when not via) and the columns of the root that decide the unit (none: a reference table). */
export function rootRoute(model: Model, t: TableModel): { root: TableModel; columns: string[] } {
  const chain = routeChain(model.config, t.config);
  const root = chain[chain.length - 1]!;
  const r = root.route;
  const columns = r.kind === 'key' || r.kind === 'cell' ? [r.column] : r.kind === 'latlng' ? [r.lat, r.lng] : [];
  return { root: model.table(qualifiedName(root)), columns };
}

/** Runs `fn` on the keys in chunks of KEY_CHUNK, in order. */
export async function inKeyChunks<K>(keys: readonly K[], fn: (chunk: K[]) => Promise<void>): Promise<void> {
  for (let i = 0; i < keys.length; i += KEY_CHUNK) await fn(keys.slice(i, i + KEY_CHUNK));
}

/**
 * The rows of `t` (a keyed table) one server holds under `keys`, by each key's position in `keys`,
 * read in one statement; with `withRoot`, each one's root route values (LEFT JOINs up the via chain).
 */
export async function readRecordedRows(model: Model, t: TableModel, c: pg.ClientBase, keys: readonly (readonly string[])[], withRoot: boolean): Promise<Map<number, FoundRow>> {
  const pk = t.info.primaryKey;
  const on = pk.map((k, i) => `t0.${quoteIdent(k)} = k.c${i}::${columnType(t.info, k)}`).join(' AND ');
  const chain = withRoot ? routeChain(model.config, t.config) : [t.config];
  const joins = chain.slice(1).map((p, i) => viaJoin(chain[i]!, p, i));
  const rootCols = withRoot ? rootRoute(model, t).columns : [];
  const alias = `t${chain.length - 1}`;
  const res = await c.query(
    `SELECT k.i::int AS i, ${pk.map((k, i) => `t0.${quoteIdent(k)}::text AS k${i}`).join(', ')}, ${rowHashSql(t.columns)}::text AS h${rootCols.map((x, i) => `, ${alias}.${quoteIdent(x)}::text AS r${i}`).join('')}
       FROM unnest(${pk.map((_, i) => `$${i + 1}::text[]`).join(', ')}) WITH ORDINALITY AS k(${pk.map((_, i) => `c${i}`).join(', ')}, i)
       JOIN ${quoteTable(t.name)} AS t0 ON ${on} ${joins.join(' ')}`,
    pk.map((_, i) => keys.map((k) => k[i]!)),
  );
  const out = new Map<number, FoundRow>();
  for (const x of res.rows as Record<string, string | number | null>[]) {
    out.set((x.i as number) - 1, {
      key: printedKey(pk.map((_, i) => x[`k${i}`] as string)),
      hash: x.h as string,
      root: rootCols.map((_, i) => x[`r${i}`] as string | null),
    });
  }
  return out;
}

/** A key's values as PostgreSQL prints the row of them: `(k1, k2)`. */
export const printedKey = (values: readonly string[]): string => `(${values.join(', ')})`;

/** `child` (alias t{i}) joined to its via parent (alias t{i+1}). */
function viaJoin(child: TableConfig, parent: TableConfig, i: number): string {
  if (child.route.kind !== 'via') throw new Error('internal: broken via chain');
  return `LEFT JOIN ${quoteTable(qualifiedName(parent))} AS t${i + 1} ON t${i + 1}.${quoteIdent(child.route.parentColumn)} = t${i}.${quoteIdent(child.route.column)}`;
}
