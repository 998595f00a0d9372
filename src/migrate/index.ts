import pLimit from 'p-limit';
import type { Config } from '../config/types.js';
import { Catalog, type Run } from '../catalog/catalog.js';
import { recordPlacements } from '../catalog/placements.js';
import { placementsIfAny } from '../catalog/read.js';
import { connect, withClient } from '../db/connect.js';
import { isConnectionLoss } from '../db/pg-error.js';
import { ExitCode, UserError } from '../errors.js';
import { redactText } from '../redact.js';
import { createRouter } from '../routing/router.js';
import { prepareCells, rootTables, takeInventory } from '../transfer/inventory.js';
import { loadModel } from '../tables/model.js';
import { checkUnits, selectTables } from '../tables/select.js';
import { copyBatch } from '../transfer/batch.js';
import type { EventSink } from './events.js';
import { captureDefinitions } from '../transfer/definitions.js';
import { syncTopology } from '../catalog/topology.js';
import { checkShards, checkSourceRows } from './preflight.js';
import { syncReferenceTables, type ReferenceResult } from '../transfer/reference.js';
import { alignSequences } from './sequences.js';
import { shardEndpoint, sourceEndpoint } from '../db/endpoints.js';
import { fromPlan, makeBatches, pick, rowScale } from './work.js';

export interface MigrateOptions {
  /** streams (batches) in flight at once; default 2 (NOTES-COPY: 2 beat 4 on 2 cores) */
  concurrency?: number;
  /** only these units (tenant keys or H3 cells) */
  units?: readonly string[];
  /** only these tables (plus nothing else: parents are not added) */
  tables?: readonly string[];
  /** a reviewed plan (`plan --out`): exactly its units, refused if routing changed since */
  plan?: { units: readonly { unit: string; shard: string }[] };
  dryRun?: boolean;
  /** compare counts and checksums per unit before committing (default true) */
  verify?: boolean;
  /** copy units again even if the catalog says they are placed */
  resync?: boolean;
  /** rows of the keyed tables per batch (a batch is one source snapshot and one target transaction); default 1,000,000 */
  batchRows?: number;
  /** keep per-row triggers on the shards during the COPY (slower; default: foreign keys checked set-based) */
  fireTriggers?: boolean;
  signal?: AbortSignal;
  onEvent?: EventSink;
}

export interface MigrateResult {
  ok: boolean;
  dryRun: boolean;
  runId?: number;
  units: { total: number; copied: number; skipped: number; failed: number; elsewhere: number };
  rows: number;
  bytes: number;
  seconds: number;
  shards: { shard: string; units: number; rows: number; bytes: number; failed: number }[];
  reference: (ReferenceResult & { shard: string })[];
  /** units that did not match after the copy (rolled back on the shard) */
  failures: { unit: string; shard: string; reason: string }[];
  /** batches that could not run (server gone, …): their units were not moved */
  errors: { shard: string; units: string[]; error: string }[];
  /** units placed on another shard than their route: rebalance moves them, migrate does not */
  elsewhere: { unit: string; placedOn: string; routesTo: string }[];
  /** the exit code this result maps to */
  exitCode: number;
}

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
  // a dry run changes nothing, not even by creating the catalog schema
  const catalog = await Catalog.open(config.catalog, { create: !opts.dryRun });
  let run: Run | undefined;
  try {
    if (!opts.dryRun) run = await catalog.lock('migrate', argsOf(opts));
    const source = sourceEndpoint(config);
    const { model, units } = await withClient(source, async (c) => {
      const model = await loadModel(config, c);
      await checkSourceRows(c, model);
      if (run) await captureDefinitions(catalog.client, c, model);
      const reader = model.cellSpecs.length ? await connect(source) : undefined;
      try {
        if (reader) await prepareCells(c, reader, model);
        return { model, units: await takeInventory(c, model, rootTables(model)) };
      } finally {
        await reader?.end();
      }
    });
    const tables = selectTables(model, opts.tables);
    const router = createRouter(config);
    const routeOf = (u: string) => (config.strategy.kind === 'jump' ? router.shardFor(u) : router.shardForCell(u));
    const placements = await placementsIfAny(catalog.client);

    let wanted = [...units.keys()].sort();
    if (opts.units) {
      checkUnits(model, tables, opts.units);
      wanted = pick(wanted, opts.units, 'unit');
    }
    if (opts.plan) wanted = fromPlan(wanted, opts.plan, routeOf);

    // --tables naming only some sharded tables re-copies those tables of units already placed; a
    // unit is placed only when all its tables are copied, so unplaced units wait for a full run.
    const shardedSelected = tables.filter((t) => t.config.route.kind !== 'reference');
    const partial = shardedSelected.length < model.sharded.length;
    const elsewhere: MigrateResult['elsewhere'] = [];
    const pending = new Map<string, string[]>(config.shards.map((s) => [s.id, []]));
    let skipped = 0;
    for (const u of wanted) {
      const to = routeOf(u);
      const placedOn = placements.get(u);
      if (placedOn !== undefined && placedOn !== to) elsewhere.push({ unit: u, placedOn, routesTo: to });
      else if (partial ? placedOn === undefined || shardedSelected.length === 0 : placedOn === to && !opts.resync) skipped++;
      else pending.get(to)!.push(u);
    }

    // Check every shard before writing anything: reachable, schema fits, no rows it should not hold.
    await checkShards(config, model, (u, shard) => placements.get(u) === shard || (placements.get(u) === undefined && routeOf(u) === shard));

    const batches = makeBatches(pending, units, opts.batchRows ?? 1_000_000);
    // Units were counted in their root tables only (cheap); scale by the planner's table sizes for progress totals.
    const scale = await withClient(source, (c) => rowScale(c, model, tables));
    const perShard = config.shards.map((s) => ({
      shard: s.id,
      units: pending.get(s.id)!.length,
      rows: Math.round(pending.get(s.id)!.reduce((n, u) => n + Number(units.get(u)!.rows), 0) * scale),
    }));
    emit({ type: 'start', runId: run?.id, units: wanted.length, skipped, rows: perShard.reduce((n, s) => n + s.rows, 0), shards: perShard });

    const result: MigrateResult = {
      ok: true,
      dryRun: Boolean(opts.dryRun),
      runId: run?.id,
      units: { total: wanted.length, copied: 0, skipped, failed: 0, elsewhere: elsewhere.length },
      rows: 0,
      bytes: 0,
      seconds: 0,
      shards: perShard.map((s) => ({ shard: s.shard, units: s.units, rows: 0, bytes: 0, failed: 0 })),
      reference: [],
      failures: [],
      errors: [],
      elsewhere,
      exitCode: ExitCode.ok,
    };
    if (opts.dryRun) return finish(result, started);
    await syncTopology(catalog.client, config);

    const limit = pLimit(Math.max(1, opts.concurrency ?? 2));
    const journal = pLimit(1); // one catalog connection: its transactions must not interleave
    const shardStats = new Map(result.shards.map((s) => [s.shard, s]));

    // Reference tables first: sharded rows may reference them by foreign key.
    const refTables = tables.filter((t) => t.config.route.kind === 'reference');
    await Promise.all(
      config.shards.map((s) =>
        limit(async () => {
          const refs = await syncReferenceTables(refTables, source, shardEndpoint(config, s.id), opts.signal);
          for (const r of refs) {
            result.reference.push({ ...r, shard: s.id });
            emit({ type: 'reference', shard: s.id, ...r });
          }
        }),
      ),
    );

    const sharded = tables.filter((t) => t.config.route.kind !== 'reference');
    await Promise.all(
      batches.map((batch) =>
        limit(async () => {
          if (opts.signal?.aborted) return;
          const stats = shardStats.get(batch.shard)!;
          const runBatch = () =>
            copyBatch(batch, {
              model,
              source,
              target: shardEndpoint(config, batch.shard),
              tables: sharded,
              verify: opts.verify !== false,
              fireTriggers: opts.fireTriggers,
              signal: opts.signal,
              onBytes: (n) => emit({ type: 'bytes', shard: batch.shard, bytes: n }),
              onTable: (table, rows, bytes) => emit({ type: 'table', shard: batch.shard, table, units: batch.units.length, rows, bytes }),
            });
          try {
            let r;
            try {
              r = await runBatch();
            } catch (e) {
              // A dropped connection is retried once on fresh connections; the batch is all-or-nothing.
              if (opts.signal?.aborted || !isConnectionLoss(e)) throw e;
              emit({ type: 'batch-error', shard: batch.shard, units: [...batch.units], error: message(e), retrying: true });
              r = await runBatch();
            }
            await journal(() => recordPlacements(catalog.client, run!.id, batch.shard, r.placed, partial ? sharded.map((t) => t.name) : undefined));
            stats.rows += r.rows;
            stats.bytes += r.bytes;
            stats.failed += r.failed.length;
            result.rows += r.rows;
            result.bytes += r.bytes;
            result.units.copied += r.placed.size;
            result.units.failed += r.failed.length;
            for (const f of r.failed) result.failures.push({ ...f, shard: batch.shard });
            emit({ type: 'batch', shard: batch.shard, units: [...batch.units], rows: r.rows, bytes: r.bytes, failed: r.failed });
          } catch (e) {
            if (opts.signal?.aborted) return;
            result.errors.push({ shard: batch.shard, units: [...batch.units], error: message(e) });
            emit({ type: 'batch-error', shard: batch.shard, units: [...batch.units], error: message(e), retrying: false });
          }
        }),
      ),
    );
    if (opts.signal?.aborted) {
      await catalog.finish(run!, 'interrupted', summary(result, started));
      throw new UserError('interrupted', `interrupted: ${result.units.copied} units were copied and journaled; in-flight batches rolled back`, {
        hint: 'run the same command again to continue',
      });
    }

    // New inserts on a shard must not reuse ids the source already handed out (one shard at a
    // time: the source client runs one query at a time).
    const touched = config.shards.filter((s) => shardStats.get(s.id)!.units > 0).map((s) => s.id);
    await withClient(source, async (src) => {
      for (const id of touched) {
        const n = await withClient(shardEndpoint(config, id), (dst) => alignSequences(src, dst, tables));
        emit({ type: 'sequences', shard: id, sequences: n });
      }
    });

    finish(result, started);
    await catalog.finish(run!, result.ok ? 'ok' : 'failed', summary(result, started));
    emit({ type: 'done', seconds: result.seconds, rows: result.rows, bytes: result.bytes });
    return result;
  } catch (e) {
    if (run && !(e instanceof UserError && e.kind === 'interrupted')) {
      await catalog.finish(run, 'failed', { error: message(e) }).catch(() => undefined);
    }
    throw e;
  } finally {
    await catalog.close();
  }
}

function finish(result: MigrateResult, started: number): MigrateResult {
  result.seconds = (performance.now() - started) / 1000;
  const serverGone = result.errors.some((e) => /cannot connect|ECONNREFUSED|terminat|closed/i.test(e.error));
  result.ok = result.failures.length === 0 && result.errors.length === 0;
  result.exitCode = result.ok ? ExitCode.ok : serverGone ? ExitCode.blocked : ExitCode.mismatch;
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

const message = (e: unknown) => redactText(e instanceof Error ? e.message : String(e));

function argsOf(o: MigrateOptions): Record<string, unknown> {
  return { concurrency: o.concurrency, units: o.units, tables: o.tables, plan: Boolean(o.plan), verify: o.verify !== false, resync: o.resync };
}

