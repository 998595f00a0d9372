import { withCatalogSession } from '../catalog/run.js';
import type { Config } from '../config/types.js';
import { placementsIfAny } from '../catalog/read.js';
import { readCrossShardSummary, type CrossShardSummary } from '../catalog/cross-shard-rows.js';
import { connect, withClient } from '../db/connect.js';
import { problemsError, usageError } from '../errors.js';
import { topologyRouter } from '../routing/router.js';
import type pg from 'pg';
import { loadModel, type Model } from '../tables/model.js';
import { quoteTable } from '../db/ident.js';
import { sourceEndpoint } from '../db/endpoints.js';
import { prepareCells } from '../unit-copy/inventory.js';
import { unitTotals } from './volumes.js';
import { restrictedCells, type CellStatus } from '../config/capacity.js';
import { boundaryShare, proposeMapping, type ProposedMapping } from './propose.js';
import { analyseForeignKeys, type KeyAnalysis } from '../foreign-keys/key-verdicts.js';
import { largestFirst } from './order.js';

export interface ShardTotals {
  shard: string;
  units: number;
  rows: number;
  bytes: number;
}

export interface Move {
  from: string;
  to: string;
  units: number;
  rows: number;
  bytes: number;
}

export interface PlanResult {
  strategy: 'jump' | 'h3';
  units: number;
  rows: number;
  bytes: number;
  /** per table: rows and bytes on the source */
  tables: { table: string; rows: number; bytes: number }[];
  /** every unit with its volume and target shard, largest first */
  assignment: { unit: string; shard: string; rows: number; bytes: number; placedOn?: string }[];
  shards: ShardTotals[];
  /** max/mean of bytes per shard (1 is perfect balance) */
  imbalance: number;
  /** h3: share of the bytes whose cell borders a data-holding cell on another shard (0..1) */
  boundaryShare?: number;
  /** against the catalog's placements: units placed on another shard than they route to */
  moves: Move[];
  /** units not placed anywhere yet */
  unplaced: number;
  proposedMapping?: ProposedMapping;
  /** h3: mapped cells whose capacity status is read-only or full, with their volume */
  restricted?: (CellStatus & { rows: number; bytes: number })[];
  /** the schema analysis: every foreign key among the configured tables and whether it stays inside a unit */
  foreignKeys: KeyAnalysis[];
  /** tables with several routes: the catalog's record of rows living on more than one shard (empty before migrate) */
  crossShard: CrossShardSummary[];
}

export interface PlanOptions {
  /** h3: propose a mapping onto this many shards (neighbouring cells together, volume balanced) */
  proposeShards?: number;
}

/**
 * Where every unit goes and what it weighs. Read-only: it takes no lock and never creates the catalog.
 *
 * @example const p = await plan(loadConfig('shardctl.yaml')); console.log(p.imbalance);
 */
export async function plan(config: Config, opts: PlanOptions = {}): Promise<PlanResult> {
  if (opts.proposeShards !== undefined && config.strategy.kind !== 'h3') {
    throw usageError('--propose-mapping is for the h3 strategy; jump needs no mapping');
  }
  const source = sourceEndpoint(config);
  const { units, keys, whole } = await withClient(source, async (c) => {
    const model = await loadModel(config, c);
    if (model.cellSpecs.length) {
      const reader = await connect(source);
      try {
        await prepareCells(c, reader, model);
      } finally {
        await reader.end();
      }
    }
    return { model, units: await unitTotals(c, model, model.sharded), keys: await analyseForeignKeys(c, model), whole: await wholeVolumes(c, model) };
  });
  refuseRowsOfNoUnit(units.noUnit);
  const [placements, crossShard] = await withCatalogSession(config.catalog, async (c) => [await placementsIfAny(c), await readCrossShardSummary(c)] as const);
  const router = topologyRouter(config);
  const routeOf = (u: string) => router.shardForUnit(u);

  const assignment = largestFirst(units.units.map((unit, i) => ({ unit, shard: routeOf(unit), rows: units.rows[i]!, bytes: units.bytes[i]!, placedOn: placements.get(unit) })));
  const shards = config.shards.map((s) => ({ shard: s.id, units: 0, rows: 0, bytes: 0 }));
  const byShard = new Map(shards.map((s) => [s.shard, s]));
  const moves = new Map<string, Move>();
  let unplaced = 0;
  for (const a of assignment) {
    const s = byShard.get(a.shard)!;
    s.units++;
    s.rows += a.rows;
    s.bytes += a.bytes;
    if (a.placedOn === undefined) unplaced++;
    else if (a.placedOn !== a.shard) {
      const key = `${a.placedOn}→${a.shard}`;
      const m = moves.get(key) ?? moves.set(key, { from: a.placedOn, to: a.shard, units: 0, rows: 0, bytes: 0 }).get(key)!;
      m.units++;
      m.rows += a.rows;
      m.bytes += a.bytes;
    }
  }
  // several routes: the units count a row under each of its units; the table's own figures count it once
  const tables = [...units.tables].map(([table, v]) => ({ table, ...v, ...whole.get(table) }));
  const total = shards.reduce((n, s) => n + s.bytes, 0);
  const mean = total / shards.length;
  return {
    strategy: config.strategy.kind,
    units: assignment.length,
    rows: tables.reduce((n, t) => n + t.rows, 0),
    bytes: total,
    tables,
    assignment,
    crossShard,
    shards,
    imbalance: mean > 0 ? Math.max(...shards.map((s) => s.bytes)) / mean : 1,
    boundaryShare: config.strategy.kind === 'h3' ? boundaryShare(assignment) : undefined,
    moves: [...moves.values()].sort((a, b) => b.bytes - a.bytes),
    unplaced,
    restricted: config.strategy.kind === 'h3'
      ? restrictedCells(config).map((c) => {
          const a = assignment.find((x) => x.unit === c.cell);
          return { ...c, rows: a?.rows ?? 0, bytes: a?.bytes ?? 0 };
        })
      : undefined,
    proposedMapping: opts.proposeShards ? proposeMapping(assignment, config, opts.proposeShards) : undefined,
    foreignKeys: keys,
  };
}

/** Rows with a NULL routing key (or cell, or every route NULL) go to no shard: a plan without them would mislead. */
function refuseRowsOfNoUnit(noUnit: ReadonlyMap<string, number>): void {
  const problems = [...noUnit].map(([table, n]) => `source: table ${table}: ${n} row${n === 1 ? ' has' : 's have'} a NULL routing key or cell (every route NULL); they belong to no unit and no shard`);
  if (problems.length) throw problemsError('blocked', problems, `source: ${problems.length} tables have rows that belong to no unit`, 'fix or delete those rows on the source, then run again');
}

/** Rows and bytes of each table with several routes, each row once. */
async function wholeVolumes(c: pg.ClientBase, model: Model): Promise<Map<string, { rows: number; bytes: number }>> {
  const out = new Map<string, { rows: number; bytes: number }>();
  for (const t of model.sharded.filter((x) => x.config.routes)) {
    const r = await c.query<{ rows: string; bytes: string | null }>(`SELECT count(*) AS rows, sum(pg_column_size(t0.*)) AS bytes FROM ${quoteTable(t.name)} AS t0`);
    out.set(t.name, { rows: Number(r.rows[0]!.rows), bytes: Number(r.rows[0]!.bytes ?? 0) });
  }
  return out;
}
