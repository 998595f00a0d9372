import type pg from 'pg';
import type { Config } from '../config/types.js';
import { UserError, usageError } from '../errors.js';
import { checkUnits } from '../tables/select.js';
import { rootTables } from '../unit-copy/inventory.js';
import type { Model, TableModel } from '../tables/model.js';
import type { Batch } from '../unit-copy/batch.js';

/** Deciding what a migrate run copies: which units, in which batches, and how much work that is. */

/**
 * Per row of the root tables, the estimated rows and heap bytes of all copied sharded tables
 * (pg_class.reltuples and pg_relation_size): progress totals and batch sizes, never a proof.
 */
export async function rowScale(c: pg.ClientBase, model: Model, tables: readonly TableModel[]): Promise<{ rows: number; bytes: number }> {
  const sharded = tables.filter((t) => t.config.route.kind !== 'reference').map((t) => t.name);
  const roots = rootTables(model).map((t) => t.name);
  const r = await c.query(
    `SELECT n.nspname || '.' || c.relname AS t, greatest(c.reltuples, 0) AS n, pg_relation_size(c.oid) AS b
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname || '.' || c.relname = ANY($1::text[])`,
    [[...new Set([...sharded, ...roots])]],
  );
  const est = new Map(r.rows.map((x) => [x.t as string, { n: Number(x.n), b: Number(x.b) }]));
  const rootRows = roots.reduce((n, t) => n + (est.get(t)?.n ?? 0), 0);
  const all = sharded.reduce((n, t) => n + (est.get(t)?.n ?? 0), 0);
  const bytes = sharded.reduce((n, t) => n + (est.get(t)?.b ?? 0), 0);
  return { rows: rootRows > 0 && all > 0 ? all / rootRows : 1, bytes: rootRows > 0 ? bytes / rootRows : 0 };
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

/** How large a batch may grow: rows of the root tables, and estimated bytes of all its tables. */
export interface BatchSize {
  rows: number;
  bytes: number;
  /** estimated bytes of all copied tables per root row (rowScale) */
  bytesPerRow: number;
}

/**
 * Units per batch at most: not a cost bound (a unit adds no statement) but a memory bound. Node
 * holds a batch's per-unit sums, proofs and placements while it is copied and then journaled, up
 * to three batches at once (two streams, one journal); without a bound the memory a run keeps live
 * would grow with its units per batch. A batch has fixed costs of its own (three sessions, a
 * snapshot, a scan of each table on both sides, a journal transaction): at 200,000 tenants of 5
 * rows on 4 shards, batches of up to 50,000 or 60,000 units (7 or 4 batches) took 12.8-17.1 s
 * where batches of 20,000 (12) took 14.0-17.6 s, alternated on a loaded machine (load 10-13),
 * with the same CPU seconds or fewer; the process's peak RSS 237-264 MiB (233-244 before).
 */
export const MAX_UNITS = 50_000;

/**
 * Groups each shard's units into batches of about `size.rows` rows or `size.bytes` bytes, whichever
 * comes first, interleaving shards so all progress. The number of units hardly bounds a batch: a
 * batch's fixed costs (snapshot, one COPY and one grouped checksum query per table, one catalog
 * write) are shared by its units however many there are, so 200,000 tenants of 5 rows cost what 20
 * tenants of 50,000 rows cost (issue 26: batches of 500 units made them 43× slower); MAX_UNITS
 * only keeps the memory of a batch bounded. `rows`: per shard, the root rows of all its units,
 * summed in the same pass (a second pass of 200,000 map lookups cost the preflight ~0.1 CPU s).
 */
export function makeBatches(pending: Map<string, string[]>, units: ReadonlyMap<string, number>, size: BatchSize): { batches: Batch[]; rows: Map<string, number> } {
  const perShard: Batch[][] = [];
  const rows = new Map<string, number>();
  for (const [shard, list] of pending) {
    const out: Batch[] = [];
    let cur: string[] = [];
    let n = 0;
    let total = 0;
    for (const u of list) {
      const r = units.get(u)!;
      cur.push(u);
      n += r;
      total += r;
      if (n >= size.rows || n * size.bytesPerRow >= size.bytes || cur.length >= MAX_UNITS) {
        out.push({ shard, units: cur });
        cur = [];
        n = 0;
      }
    }
    if (cur.length) out.push({ shard, units: cur });
    perShard.push(out);
    rows.set(shard, total);
  }
  const interleaved: Batch[] = [];
  for (let i = 0; perShard.some((b) => i < b.length); i++) for (const b of perShard) if (b[i]) interleaved.push(b[i]!);
  return { batches: interleaved, rows };
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
