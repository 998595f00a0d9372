import type pg from 'pg';
import type { Config } from '../config/types.js';
import { UserError, usageError } from '../errors.js';
import { checkUnits } from '../tables/select.js';
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
export function makeBatches(pending: Map<string, string[]>, units: Map<string, { rows: number }>, rows: number): Batch[] {
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

export interface Work {
  /** the units asked for (all, --units, or a plan's) */
  wanted: string[];
  /** per shard, the units to copy there */
  pending: Map<string, string[]>;
  /** wanted units already placed where they route (or, for a partial run, not placed yet) */
  skipped: number;
  /** units placed on another shard than their route: rebalance moves them, migrate does not */
  elsewhere: { unit: string; placedOn: string; routesTo: string }[];
  /** only some sharded tables are copied */
  partial: boolean;
}

/** What a run copies where, from the units on the source, the placements and the options. */
export function chooseWork(
  config: Config,
  model: Model,
  tables: readonly TableModel[],
  all: string[],
  placements: Map<string, string>,
  routeOf: (u: string) => string,
  opts: { units?: readonly string[]; plan?: { units: readonly { unit: string; shard: string }[] }; resync?: boolean },
): Work {
  let wanted = all;
  if (opts.units) {
    checkUnits(model, tables, opts.units);
    wanted = pick(wanted, opts.units, 'unit');
  }
  if (opts.plan) wanted = fromPlan(wanted, opts.plan, routeOf);

  // --tables naming only some sharded tables re-copies those tables of units already placed; a
  // unit is placed only when all its tables are copied, so unplaced units wait for a full run.
  const shardedSelected = tables.filter((t) => t.config.route.kind !== 'reference');
  const partial = shardedSelected.length < model.sharded.length;
  const elsewhere: Work['elsewhere'] = [];
  const pending = new Map<string, string[]>(config.shards.map((s) => [s.id, []]));
  let skipped = 0;
  for (const u of wanted) {
    const to = routeOf(u);
    const placedOn = placements.get(u);
    if (placedOn !== undefined && placedOn !== to) elsewhere.push({ unit: u, placedOn, routesTo: to });
    else if (partial ? placedOn === undefined || shardedSelected.length === 0 : placedOn === to && !opts.resync) skipped++;
    else pending.get(to)!.push(u);
  }
  return { wanted, pending, skipped, elsewhere, partial };
}
