import type pg from 'pg';
import { quoteTable } from '../db/ident.js';
import type { TableModel } from '../tables/model.js';
import type { Row } from '../stream/decoder.js';
import type { RowRouter } from '../stream/route.js';
import { fullRowSql } from '../stream/statements.js';

/**
 * Cutover's proof for a table without a primary key (REPLICA IDENTITY FULL): the follower recorded
 * every row value it wrote (all columns). The copy proved the multiset of rows equal; each change
 * since altered only the counts of the values it removed or added, all recorded. So comparing, for
 * each recorded value, how many rows hold it on the monolith with how many its unit's shard holds
 * (and 0 elsewhere) proves the whole table. One scan of the table per side, hashed on the row.
 * Returns the positions in `values` of the values that differ (the prover keeps their records).
 */
export async function checkFullRows(
  t: TableModel,
  values: readonly (readonly (string | null)[])[],
  router: RowRouter,
  source: pg.ClientBase,
  shards: ReadonlyMap<string, pg.ClientBase>,
  problem: (s: string) => void,
  onRoot: (unit: string, shard: string, rows: number) => void,
): Promise<Set<number>> {
  const text = `SELECT k.i::int AS i, count(x.v)::int AS n
                  FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS k(v, i)
                  LEFT JOIN (SELECT ${fullRowSql(t, 't0')} AS v FROM ${quoteTable(t.name)} AS t0) AS x ON x.v = k.v
                 GROUP BY k.i`;
  const param = [JSON.stringify(values)];
  const counts = async (c: pg.ClientBase) => new Map((await c.query(text, param)).rows.map((r) => [r.i - 1, r.n as number]));
  const [want, ...got] = await Promise.all([counts(source), ...[...shards.values()].map(counts)]);
  const ids = [...shards.keys()];
  const differ = new Set<number>();
  for (const [i, v] of values.entries()) {
    const row: Row = Object.fromEntries(t.columns.map((c, j) => [c, v[j] ?? null]));
    const p = await router.route(t, row);
    const home = p.kind === 'shard' ? p.shard : undefined;
    const n = want!.get(i) ?? 0;
    const at = `table ${t.name} row ${JSON.stringify(v).slice(0, 80)}`;
    for (const [s, id] of ids.entries()) {
      const has = got[s]!.get(i) ?? 0;
      const expected = id === home ? n : 0;
      if (has === expected) continue;
      differ.add(i);
      problem(`${at}: the monolith has ${n}, shard ${id} ${has} (its shard: ${home ?? 'none'})`);
    }
    if (n && p.kind === 'shard' && p.unit !== undefined) onRoot(p.unit, p.shard, n);
  }
  return differ;
}
