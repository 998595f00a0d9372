import type pg from 'pg';
import { UserError, usageError } from '../errors.js';
import { rootTables } from '../transfer/inventory.js';
import type { Model, TableModel } from '../tables/model.js';
import type { Batch } from '../transfer/batch.js';

/** Deciding what a migrate run copies: which units, in which batches, and how much work that is. */

/** estimated rows of all copied sharded tables per row of the root tables (pg_class.reltuples) */
export async function rowScale(c: pg.ClientBase, model: Model, tables: readonly TableModel[]): Promise<number> {
  const sharded = tables.filter((t) => t.config.route.kind !== 'reference').map((t) => t.name);
  const roots = rootTables(model).map((t) => t.name);
  const r = await c.query(
    `SELECT n.nspname || '.' || c.relname AS t, greatest(c.reltuples, 0) AS n
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname || '.' || c.relname = ANY($1::text[])`,
    [[...new Set([...sharded, ...roots])]],
  );
  const est = new Map(r.rows.map((x) => [x.t as string, Number(x.n)]));
  const rootRows = roots.reduce((n, t) => n + (est.get(t) ?? 0), 0);
  const all = sharded.reduce((n, t) => n + (est.get(t) ?? 0), 0);
  return rootRows > 0 && all > 0 ? all / rootRows : 1;
}

export function pick(all: string[], asked: readonly string[], what: string): string[] {
  const have = new Set(all);
  const missing = asked.filter((u) => !have.has(u));
  if (missing.length) throw usageError(`no ${what} ${missing.slice(0, 5).join(', ')} on the source`);
  return [...new Set(asked)];
}

export function fromPlan(all: string[], plan: { units: readonly { unit: string; shard: string }[] }, routeOf: (u: string) => string): string[] {
  const stale = plan.units.filter((p) => routeOf(p.unit) !== p.shard);
  if (stale.length) {
    throw new UserError('blocked', `the plan is stale: ${stale.length} unit(s) now route elsewhere (e.g. ${stale[0]!.unit} → ${routeOf(stale[0]!.unit)}, plan says ${stale[0]!.shard})`, {
      hint: 'run shardctl plan --out again and review it',
    });
  }
  return pick(all, plan.units.map((p) => p.unit), 'unit');
}

/** Groups each shard's units into batches of about `rows` rows, interleaving shards so all progress. */
export function makeBatches(pending: Map<string, string[]>, units: Map<string, { rows: bigint }>, rows: number): Batch[] {
  const perShard: Batch[][] = [];
  for (const [shard, list] of pending) {
    const out: Batch[] = [];
    let cur: string[] = [];
    let n = 0;
    for (const u of list) {
      cur.push(u);
      n += Number(units.get(u)!.rows);
      if (n >= rows || cur.length >= 500) {
        out.push({ shard, units: cur });
        cur = [];
        n = 0;
      }
    }
    if (cur.length) out.push({ shard, units: cur });
    perShard.push(out);
  }
  const interleaved: Batch[] = [];
  for (let i = 0; perShard.some((b) => i < b.length); i++) for (const b of perShard) if (b[i]) interleaved.push(b[i]!);
  return interleaved;
}
