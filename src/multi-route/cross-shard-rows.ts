import type pg from 'pg';
import { quoteIdent } from '../db/ident.js';
import { rowHashSql } from '../tables/row-hash.js';
import type { TableModel } from '../tables/model.js';
import type { Scope } from '../tables/scope.js';

/** One row of a table with several routes whose units live on different shards, as one server holds it. */
export interface CrossRow {
  /** its units, one per route (NULL routes left out) */
  units: string[];
  /** the row's hash (the checksum's 64-bit md5 slice), as decimal text */
  hash: string;
}

/**
 * The cross-shard rows of a table with several routes on one server: rows whose units do not all
 * live on one shard (`home`), keyed by their primary key as text (`id=5`; the row hash for a table
 * without one). `seen` must hold every unit of the rows in scope, so "all on one shard" is a
 * containment test against one array per shard, in SQL, and only cross-shard rows travel to Node.
 */
export async function readCrossRows(
  session: pg.ClientBase,
  t: TableModel,
  scope: Scope,
  seen: Iterable<string>,
  home: (unit: string) => string,
): Promise<Map<string, CrossRow>> {
  const byShard = new Map<string, string[]>();
  for (const u of seen) {
    const s = home(u);
    byShard.set(s, [...(byShard.get(s) ?? []), u]);
  }
  const out = new Map<string, CrossRow>();
  if (byShard.size < 2) return out; // every unit here lives on one shard: no row can cross
  const units = `array_remove(${scope.units!}, NULL)`;
  const lists = [...byShard.values()];
  const oneShard = lists.map((_, i) => `${units} <@ $${i + 1}::text[]`).join(' OR ');
  const pk = t.info.primaryKey;
  const key = pk.length ? pk.map((c) => `${quoteLiteralIdent(c)} || '=' || coalesce(t0.${quoteIdent(c)}::text, 'NULL')`).join(` || ', ' || `) : `'row ' || ${rowHashSql(t.columns)}::text`;
  const r = await session.query<{ key: string; units: string[]; hash: string }>(
    `SELECT ${key} AS key, ${units} AS units, ${rowHashSql(t.columns)}::text AS hash
       FROM ${scope.rows!} WHERE ${scope.filter} AND NOT (${oneShard})`,
    lists,
  );
  for (const row of r.rows) out.set(row.key, { units: row.units, hash: row.hash });
  return out;
}

/** A column name as a SQL text literal (for the key text `id=5`). */
const quoteLiteralIdent = (c: string) => `'${c.replace(/'/g, "''")}'`;

/**
 * Takes the legitimate cross-shard copies out of a shard's per-unit sums: a copy held for one of its
 * units that lives here is not a row "of" its other units on this shard. What stays under a unit
 * living elsewhere is then truly misplaced. Returns how many copies were taken out.
 */
export function discountCopies(
  sums: Map<string, { rows: number; checksum: string }>,
  cross: ReadonlyMap<string, CrossRow>,
  server: string,
  home: (unit: string) => string,
): number {
  let n = 0;
  for (const row of cross.values()) {
    if (!row.units.some((u) => home(u) === server)) continue;
    n++;
    for (const u of new Set(row.units)) {
      if (home(u) === server) continue;
      const s = sums.get(u);
      if (!s) continue;
      s.rows -= 1;
      s.checksum = (BigInt(s.checksum) - BigInt(row.hash)).toString();
      if (s.rows === 0) sums.delete(u);
    }
  }
  return n;
}
