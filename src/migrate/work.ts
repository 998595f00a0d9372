import type pg from 'pg';
import type { Config } from '../config/types.js';
import { UserError, usageError } from '../errors.js';
import { checkUnits } from '../tables/select.js';
import { rootTables } from '../transfer/inventory.js';
import type { Model, TableModel } from '../tables/model.js';
import type { Batch } from '../transfer/batch.js';
import { qualifiedName, routeChain } from '../tables/scope.js';

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

/** Groups each shard's units into batches of about `rows` rows (`weight` per unit), interleaving shards so all progress. */
export function makeBatches(pending: Map<string, string[]>, weight: (unit: string) => number, rows: number): Batch[] {
  const perShard: Batch[][] = [];
  for (const [shard, list] of pending) {
    const out: Batch[] = [];
    let cur: string[] = [];
    let n = 0;
    for (const u of list) {
      cur.push(u);
      n += weight(u);
      if (n >= rows || cur.length >= MAX_UNITS) {
        out.push({ shard, units: cur });
        cur = [];
        n = 0;
      }
    }
    if (cur.length) out.push({ shard, units: cur });
    perShard.push(out);
  }
  const interleaved: Batch[] = [];
  for (let i = 0; i < Math.max(0, ...perShard.map((b) => b.length)); i++) for (const b of perShard) if (b[i]) interleaved.push(b[i]!);
  return interleaved;
}

const MAX_UNITS = 500;
const MAX_ROWS = 1_000_000;
const MIN_ROWS = 10_000;
/** batches per stream the fitted size aims at */
const PER_STREAM = 4;

/**
 * Rows per batch when the caller names none. A batch is one transaction on one shard whose
 * checksums follow its copy; with a batch per shard, the run lasts as long as the biggest shard's
 * chain while the other streams sit idle (jump hashing 20 tenants onto 4 shards gave 2, 4, 7 and 7).
 * So the size aims at about PER_STREAM batches per stream, between MIN_ROWS and MAX_ROWS — but only
 * where every copied table finds a batch's rows through an index on its route column (`indexed`):
 * without one, every batch would scan the whole table, and fewer, larger batches are cheaper.
 */
export function fittedBatchRows(totalRows: number, concurrency: number, indexed: boolean): number {
  if (!indexed) return MAX_ROWS;
  return Math.min(MAX_ROWS, Math.max(MIN_ROWS, Math.ceil(totalRows / (Math.max(1, concurrency) * PER_STREAM))));
}

/**
 * Whether each table's rows of a batch can be found through an index on the source: every table of
 * its route chain has a valid, non-partial index led by its route column (a key, an H3 index
 * column, a via column). lat/lng tables join the run's staging by primary key; tables with several
 * routes are filtered through arrays of their units, which no index serves.
 */
export async function routesIndexed(c: pg.ClientBase, model: Model, tables: readonly TableModel[]): Promise<boolean> {
  const r = await c.query<{ t: string; col: string }>(
    `SELECT n.nspname || '.' || cl.relname AS t, a.attname AS col
       FROM pg_index i
       JOIN pg_class cl ON cl.oid = i.indrelid
       JOIN pg_namespace n ON n.oid = cl.relnamespace
       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
      WHERE i.indisvalid AND i.indpred IS NULL`,
  );
  const led = new Set(r.rows.map((x) => `${x.t}\0${x.col}`));
  return tables.every((t) => {
    if (t.config.route.kind === 'reference') return true;
    if (t.config.routes) return false;
    return routeChain(model.config, t.config).every((link) => {
      const route = link.route;
      if (route.kind === 'latlng') return true;
      return (route.kind === 'key' || route.kind === 'cell' || route.kind === 'via') && led.has(`${qualifiedName(link)}\0${route.column}`);
    });
  });
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
