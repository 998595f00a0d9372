import pLimit from 'p-limit';
import type pg from 'pg';
import { readPlacements } from '../catalog/placements.js';
import { refreshCrossRecord } from '../multi-route/refresh-record.js';
import type { Config } from '../config/types.js';
import { placementsIfAny } from '../catalog/read.js';
import { refuseInOnlineWindow } from '../stream/window.js';
import { withRun, type RunScope } from '../catalog/run.js';
import { readSource } from './read-source.js';
import { withClient, type Endpoint } from '../db/connect.js';
import { runSessions, type Sessions } from '../db/sessions.js';
import { installGuards } from './guards.js';
import { UserError } from '../errors.js';
import type { Model, TableModel } from '../tables/model.js';
import { selectTables } from '../tables/select.js';
import type { EventSink, MigrateStep } from './events.js';
import { syncTopology } from '../catalog/topology.js';
import { checkShards } from './preflight.js';
import { alignFleetSequences } from '../sequences/align.js';
import { failureText } from '../db/pg-error.js';
import { sourceEndpoint } from '../db/endpoints.js';
import { chooseWork, makeBatches, rowScale } from './work.js';
import { topologyRouter } from '../routing/router.js';
import { copyBatches, copyReferenceTables, type CopyRun } from './copy.js';
import { copyFormats } from './formats.js';
import { buildDeferredIndexes, deferIndexes, FEW_BATCHES } from './indexes-after.js';
import type { MigrateOptions, MigrateResult } from './types.js';

export type { MigrateOptions, MigrateResult } from './types.js';

/**
 * Copies every unit from the source to the shard it routes to. See batch.ts for the per-batch
 * guarantees; this function decides what to copy, checks everything it can before writing, runs the
 * batches with bounded concurrency and journals each finished batch in the catalog, so a rerun
 * continues where a crash left off and does nothing twice.
 *
 * @example const result = await migrate(loadConfig('shardctl.yaml'), { concurrency: 2 });
 */
export async function migrate(config: Config, opts: MigrateOptions = {}): Promise<MigrateResult> {
  const started = performance.now();
  const emit: EventSink = opts.onEvent ?? (() => undefined);
  // each step's wall time, reported as it ends (the phase breakdown of a run)
  let lap = started;
  const step = (name: MigrateStep) => {
    const now = performance.now();
    emit({ type: 'step', step: name, seconds: (now - lap) / 1000 });
    lap = now;
  };
  const spec = {
    command: 'migrate',
    args: argsOf(opts),
    lock: opts.dryRun ? ('none' as const) : ('run' as const),
    create: !opts.dryRun, // a dry run changes nothing, not even by creating the catalog schema
    outcome: (r: MigrateResult) => ({ status: r.ok ? ('ok' as const) : ('failed' as const), summary: summary(r, started) }),
  };
  const body = async (scope: RunScope) => {
    // the shards' checks, index DDL and guards share one session per shard for the run
    const sessions = runSessions();
    try {
      return await steps(scope, sessions);
    } finally {
      await sessions.close();
    }
  };
  const steps = async (scope: RunScope, sessions: Sessions) => {
    const { catalog, run } = scope;
    if (!opts.held && !opts.dryRun) await refuseInOnlineWindow(catalog.client, opts.resync ? 'migrate --resync' : 'migrate'); // held: migrate --follow's own copy
    const source = sourceEndpoint(config);
    const router = topologyRouter(config);
    const routeOf = (u: string) => router.shardForUnit(u);
    const placements = await placementsIfAny(catalog.client);
    // Check every shard before writing anything: reachable, schema fits, no rows it should not hold.
    // That starts as soon as the source's model is read and runs while the source is scanned; a
    // source problem is still the one reported when both sides have one.
    const belongs = (u: string, shard: string) => placements.get(u) === shard || (placements.get(u) === undefined && routeOf(u) === shard);
    let shardCheck: Promise<[Map<string, Set<string>>, Awaited<ReturnType<typeof copyFormats>>]> | undefined;
    const checkFleet = (model: Model) => {
      shardCheck = (async () => {
        const sharded = selectTables(model, opts.tables).filter((t) => t.config.route.kind !== 'reference');
        return Promise.all([checkShards(config, model, belongs, (u, shard) => placements.get(u) === shard, sessions), copyFormats(config, source, sharded, opts.copyFormat === 'text', sessions)]);
      })();
      shardCheck.catch(() => undefined); // awaited below; observed here so an early source failure leaves no unhandled rejection
    };
    let view;
    try {
      view = await readSource(source, config, run ? catalog : undefined, emit, opts.snapshot, checkFleet);
    } catch (e) {
      await shardCheck?.catch(() => undefined);
      throw e;
    }
    try {
      const { model, units, cells } = view;
      const tables = selectTables(model, opts.tables);
      const work = chooseWork(config, model, tables, [...units.keys()].sort(), placements, routeOf, opts);
      const sharded = tables.filter((t) => t.config.route.kind !== 'reference');
      // Units were counted in their root tables only (cheap); scale by the planner's table sizes for
      // progress totals and batch bytes. Read while the shards' checks finish.
      const scaling = withClient(source, (c) => rowScale(c, model, tables));
      scaling.catch(() => undefined); // awaited below, after the shards' verdict (which comes first)
      const [present, formats] = await (shardCheck ?? Promise.reject(new Error('internal: the shards were not checked')));
      const scale = await scaling;
      const { batches, rows: pendingRows } = makeBatches(work.pending, units, { rows: opts.batchRows ?? 1_000_000, bytes: opts.batchBytes ?? 512 * 1024 * 1024, bytesPerRow: scale.bytes });
      const perShard = config.shards.map((s) => ({
        shard: s.id,
        units: work.pending.get(s.id)!.length,
        rows: Math.round(pendingRows.get(s.id)! * scale.rows),
      }));
      step('preflight');
      emit({ type: 'start', runId: run?.id, units: work.wanted.length, skipped: work.skipped, rows: perShard.reduce((n, s) => n + s.rows, 0), shards: perShard });

      const result: MigrateResult = {
        ok: true,
        dryRun: Boolean(opts.dryRun),
        runId: run?.id,
        units: { total: work.wanted.length, copied: 0, skipped: work.skipped, failed: 0, elsewhere: work.elsewhere.length },
        rows: 0,
        bytes: 0,
        seconds: 0,
        shards: perShard.map((s) => ({ shard: s.shard, units: s.units, rows: 0, bytes: 0, failed: 0 })),
        reference: [],
        failures: [],
        errors: [],
        elsewhere: work.elsewhere,
        gone: [...placements].filter(([u]) => !units.has(u)).map(([unit, placedOn]) => ({ unit, placedOn })),
      };
      if (opts.dryRun) return finish(result, started);
      await syncTopology(catalog.client, config);

      const copy: CopyRun = {
        config, model, source, catalog: catalog.client, runId: run!.id, opts, emit, result, limit: pLimit(Math.max(1, opts.concurrency ?? 2)),
        cells,
        present,
        placed: placements,
        formats,
      };
      if (opts.indexesAfter !== false) {
        const perShard = new Map<string, number>();
        for (const b of batches) perShard.set(b.shard, (perShard.get(b.shard) ?? 0) + 1);
        const many = new Set([...perShard].filter(([, n]) => n > FEW_BATCHES).map(([s]) => s));
        const deferred = await deferIndexes(config, catalog.client, run?.id, sharded, many, sessions);
        for (const s of config.shards) {
          const n = deferred.filter((d) => d.shard === s.id).length;
          if (n) emit({ type: 'indexes-deferred', shard: s.id, indexes: n });
        }
      }
      // Reference tables first: sharded rows may reference them by foreign key.
      await copyReferenceTables(copy, tables.filter((t) => t.config.route.kind === 'reference'));
      step('reference');
      await copyBatches(copy, batches, sharded, work.partial);
      step('batches');
      if (opts.signal?.aborted) {
        await scope.finish('interrupted', summary(result, started));
        throw new UserError('interrupted', `interrupted: ${result.units.copied} units were copied and journaled; in-flight batches rolled back`, {
          hint: 'run the same command again to continue',
        });
      }
      for (const p of await buildDeferredIndexes(config, catalog.client, copy.limit, emit, sessions)) result.errors.push({ shard: '*', units: [], error: p, unreachable: false });
      step('indexes');
      await alignIds(config, source, tables, result, emit);
      step('sequences');
      await installGuards(config, model, result, sessions);
      step('guards');
      await recordCrossShard(config, model, catalog.client, routeOf, result);
      step('cross-shard');

      finish(result, started);
      await scope.finish(spec.outcome(result).status, summary(result, started));
      step('finish');
      emit({ type: 'done', seconds: result.seconds, rows: result.rows, bytes: result.bytes });
      return result;
    } finally {
      await view.close();
    }
  };
  // held: the caller's run records the outcome
  return opts.held ? body({ ...opts.held, finish: async () => undefined }) : withRun(config.catalog, spec, body);
}

/** Every shard's sequences follow the id rule (sequences/align.ts), also on a rerun that copied nothing. */
async function alignIds(config: Config, source: Endpoint, tables: readonly TableModel[], result: MigrateResult, emit: EventSink): Promise<void> {
  try {
    for (const [id, n] of await alignFleetSequences(config, tables, source)) emit({ type: 'sequences', shard: id, sequences: n });
  } catch (e) {
    result.errors.push({ shard: '*', units: [], error: failureText(e, 'aligning the id sequences'), unreachable: false });
  }
}

/** Tables with several routes: the catalog's record of cross-shard rows, refreshed from the shards. */
async function recordCrossShard(config: Config, model: Model, catalog: pg.ClientBase, routeOf: (u: string) => string, result: MigrateResult): Promise<void> {
  if (!model.sharded.some((t) => t.config.routes)) return;
  try {
    const placed = await readPlacements(catalog);
    result.crossShard = await refreshCrossRecord(config, model, catalog, (u) => placed.get(u) ?? routeOf(u), 'migrate');
  } catch (e) {
    result.errors.push({ shard: '*', units: [], error: failureText(e, 'recording the cross-shard rows'), unreachable: false });
  }
}

function finish(result: MigrateResult, started: number): MigrateResult {
  result.seconds = (performance.now() - started) / 1000;
  result.ok = result.failures.length === 0 && result.errors.length === 0;
  return result;
}

const summary = (r: MigrateResult, started: number) => ({
  units: r.units,
  rows: r.rows,
  bytes: r.bytes,
  seconds: (performance.now() - started) / 1000,
  failures: r.failures.length,
  errors: r.errors.length,
});

function argsOf(o: MigrateOptions): Record<string, unknown> {
  return { concurrency: o.concurrency, units: o.units, tables: o.tables, plan: Boolean(o.plan), verify: o.verify !== false, resync: o.resync, indexesAfter: o.indexesAfter !== false };
}

