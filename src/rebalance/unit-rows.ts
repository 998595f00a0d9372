import type pg from 'pg';
import { connect, withTransaction, type Endpoint } from '../db/connect.js';
import { quoteTable, textArrayLiteral } from '../db/ident.js';
import { prepareCells } from '../unit-copy/inventory.js';
import type { Model, TableModel } from '../tables/model.js';
import { deleteSql, scopeOf } from '../tables/scope.js';

/**
 * Where other units live, for tables with several routes: unit → the shards it lives on now (its
 * placement, and both ends of a move in flight). A row of the moving unit stays on a shard while one
 * of its other units lives there.
 */
export type HomesOf = (units: readonly string[]) => Promise<Map<string, ReadonlySet<string>>>;

/** The shard a unit-rows call works on, by id, and where other units live (needed when a table has several routes). */
export interface OnShard {
  readonly id: string;
  readonly homesOf: HomesOf;
}

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
 * A table with several routes: the SQL condition for rows of `unit` on `on.id` that must stay there
 * because another of their units lives there (the placement rule, routes.ts). 'FALSE' when none.
 */
export async function keptByOthers(c: pg.ClientBase, model: Model, t: TableModel, unit: string, on: OnShard | undefined): Promise<string> {
  if (!t.config.routes) return 'FALSE';
  if (!on) throw new Error(`internal: table ${t.name} has several routes; deleting a unit's rows needs to know where its other units live`);
  const scope = scopeOf(model.ctx, t.config, [unit]);
  const r = await c.query<{ u: string }>(
    `SELECT DISTINCT u FROM ${scope.rows!} CROSS JOIN LATERAL unnest(${scope.units!}) AS u WHERE ${scope.filter} AND u IS NOT NULL AND u <> $1`,
    [unit],
  );
  if (!r.rows.length) return 'FALSE';
  const homes = await on.homesOf(r.rows.map((x) => x.u));
  const keep = r.rows.map((x) => x.u).filter((u) => homes.get(u)?.has(on.id));
  return keep.length ? `array_remove(${scope.units!}, NULL) && ${textArrayLiteral(keep)}` : 'FALSE';
}

/**
 * The rows of `unit` a shard already holds, as `public.orders: 3 rows, public.themes: 1 row`, or
 * undefined when it holds none. A move's target must hold none once it is fenced: `pin`,
 * `mapping set` and `add-shard` publish the new topology before the data moves, and rows an
 * application router wrote there meanwhile are the application's, not a stale copy to replace.
 * Rows of a table with several routes that another unit living there justifies do not count.
 */
export function unitRowsOn(model: Model, shard: Endpoint, unit: string, on?: OnShard): Promise<string | undefined> {
  return withUnitSession(model, shard, unit, async (c) => {
    const found: string[] = [];
    for (const t of model.sharded) {
      const scope = scopeOf(model.ctx, t.config, [unit]);
      const kept = await keptByOthers(c, model, t, unit, on);
      const r = await c.query<{ n: string }>(`SELECT count(*) AS n FROM ${scope.from} WHERE ${scope.filter} AND NOT (${kept})`);
      const n = Number(r.rows[0]!.n);
      if (n > 0) found.push(`${t.name}: ${n} row${n === 1 ? '' : 's'}`);
    }
    return found.length ? found.join(', ') : undefined;
  });
}

/**
 * Deletes a unit's rows from a shard in one transaction, children first; a row of a table with
 * several routes stays while another of its units lives on that shard.
 */
export function deleteUnit(model: Model, shard: Endpoint, unit: string, on?: OnShard): Promise<void> {
  return withUnitSession(model, shard, unit, (c) =>
    withTransaction(c, async () => {
      for (const t of [...model.sharded].reverse()) {
        const scope = scopeOf(model.ctx, t.config, [unit]);
        const kept = await keptByOthers(c, model, t, unit, on);
        await c.query(kept === 'FALSE' ? deleteSql(t.config, scope) : `DELETE FROM ${quoteTable(t.name)} AS t0 WHERE ${scope.filter} AND NOT (${kept})`);
      }
    }),
  );
}
