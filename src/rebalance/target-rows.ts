import type pg from 'pg';
import { connect, type Endpoint } from '../db/connect.js';
import { prepareCells } from '../transfer/inventory.js';
import type { Model } from '../tables/model.js';
import { scopeOf } from '../tables/scope.js';

/**
 * The rows of `unit` a shard already holds, as `public.orders: 3 rows, public.themes: 1 row`, or
 * undefined when it holds none. A move's target must hold none once it is fenced: `pin`,
 * `mapping set` and `add-shard` publish the new topology before the data moves, and rows an
 * application router wrote there meanwhile are the application's, not a stale copy to replace.
 */
export async function unitRowsOn(model: Model, shard: Endpoint, unit: string): Promise<string | undefined> {
  const c = await connect(shard);
  let reader: pg.Client | undefined;
  try {
    if (model.cellSpecs.length) {
      reader = await connect(shard);
      await prepareCells(c, reader, model, new Set([unit]));
    }
    const found: string[] = [];
    for (const t of model.sharded) {
      const scope = scopeOf(model.ctx, t.config, [unit]);
      const r = await c.query<{ n: string }>(`SELECT count(*) AS n FROM ${scope.from} WHERE ${scope.filter}`);
      const n = Number(r.rows[0]!.n);
      if (n > 0) found.push(`${t.name}: ${n} row${n === 1 ? '' : 's'}`);
    }
    return found.length ? found.join(', ') : undefined;
  } finally {
    await Promise.all([c.end().catch(() => undefined), reader?.end().catch(() => undefined)]);
  }
}
