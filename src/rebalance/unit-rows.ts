import type pg from 'pg';
import { connect, withTransaction, type Endpoint } from '../db/connect.js';
import { prepareCells } from '../transfer/inventory.js';
import type { Model } from '../tables/model.js';
import { deleteSql, scopeOf } from '../tables/scope.js';

/**
 * Runs `fn` on a session of `shard` that can scope `unit`'s rows: lat/lng tables need the cells of
 * their rows materialised in the session first (tables/cells.ts), read through a second connection.
 */
async function withUnitSession<T>(model: Model, shard: Endpoint, unit: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = await connect(shard);
  let reader: pg.Client | undefined;
  try {
    if (model.cellSpecs.length) {
      reader = await connect(shard);
      await prepareCells(c, reader, model, new Set([unit]));
    }
    return await fn(c);
  } finally {
    await Promise.all([c.end().catch(() => undefined), reader?.end().catch(() => undefined)]);
  }
}

/**
 * The rows of `unit` a shard already holds, as `public.orders: 3 rows, public.themes: 1 row`, or
 * undefined when it holds none. A move's target must hold none once it is fenced: `pin`,
 * `mapping set` and `add-shard` publish the new topology before the data moves, and rows an
 * application router wrote there meanwhile are the application's, not a stale copy to replace.
 */
export function unitRowsOn(model: Model, shard: Endpoint, unit: string): Promise<string | undefined> {
  return withUnitSession(model, shard, unit, async (c) => {
    const found: string[] = [];
    for (const t of model.sharded) {
      const scope = scopeOf(model.ctx, t.config, [unit]);
      const r = await c.query<{ n: string }>(`SELECT count(*) AS n FROM ${scope.from} WHERE ${scope.filter}`);
      const n = Number(r.rows[0]!.n);
      if (n > 0) found.push(`${t.name}: ${n} row${n === 1 ? '' : 's'}`);
    }
    return found.length ? found.join(', ') : undefined;
  });
}

/** Deletes a unit's rows from a shard in one transaction, children first. */
export function deleteUnit(model: Model, shard: Endpoint, unit: string): Promise<void> {
  return withUnitSession(model, shard, unit, (c) =>
    withTransaction(c, async () => {
      for (const t of [...model.sharded].reverse()) await c.query(deleteSql(t.config, scopeOf(model.ctx, t.config, [unit])));
    }),
  );
}
