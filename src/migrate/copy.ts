import type pg from 'pg';
import pLimit, { type LimitFunction } from 'p-limit';
import type { Config } from '../config/types.js';
import { recordPlacements } from '../catalog/placements.js';
import { isConnectError, type Endpoint } from '../db/connect.js';
import { shardEndpoint } from '../db/endpoints.js';
import { failureText, isConnectionLoss, pgFailure } from '../db/pg-error.js';
import type { Model, TableModel } from '../tables/model.js';
import type { StagedCells } from '../tables/staged-cells.js';
import type { ShardFormat } from './formats.js';
import { copyBatch, type Batch, type RunCells } from '../unit-copy/batch.js';
import { syncReferenceTables } from '../unit-copy/reference.js';
import { journalLanes } from './journal-lanes.js';
import type { EventSink } from './events.js';
import type { MigrateOptions, MigrateResult } from './types.js';

/** What the copy steps of one migrate run share; `result` is filled in as batches finish. */
export interface CopyRun {
  readonly config: Config;
  readonly model: Model;
  readonly source: Endpoint;
  /** the catalog connection the batches are journaled on */
  readonly catalog: pg.ClientBase;
  readonly runId: number;
  readonly opts: MigrateOptions;
  readonly emit: EventSink;
  readonly result: MigrateResult;
  /** streams in flight at once, over reference tables and batches */
  readonly limit: LimitFunction;
  /** lat/lng models: the run snapshot and the cells staged from it */
  readonly cells?: { readonly snapshot: string; readonly staged: StagedCells };
  /** per shard, the units it held rows of at the preflight without a placement there (migrate/preflight.ts checkShards) */
  readonly present: ReadonlyMap<string, ReadonlySet<string>>;
  /** unit → shard of every unit the catalog placed when the run began (under the run lock) */
  readonly placed: ReadonlyMap<string, string>;
  /** per shard, the COPY format of each sharded table (migrate/formats.ts); text where absent */
  readonly formats?: ReadonlyMap<string, ReadonlyMap<string, ShardFormat>>;
}

/** Every shard gets the reference tables as the source has them. */
export async function copyReferenceTables(run: CopyRun, tables: readonly TableModel[]): Promise<void> {
  const { config, result, emit } = run;
  await Promise.all(
    config.shards.map((s) =>
      run.limit(async () => {
        const refs = await syncReferenceTables(tables, run.source, shardEndpoint(config, s.id), run.opts.signal, run.opts.snapshot).catch((e) => {
          throw pgFailure(e, `shard ${s.id}, reference tables`);
        });
        for (const r of refs) {
          result.reference.push({ ...r, shard: s.id });
          emit({ type: 'reference', shard: s.id, ...r });
        }
      }),
    ),
  );
}

/**
 * Runs the batches, each all-or-nothing, and journals each finished one. A batch that fails is
 * recorded in `result.errors` and the others go on; `partial` (some sharded tables only) journals
 * which tables were copied.
 */
export async function copyBatches(run: CopyRun, batches: readonly Batch[], sharded: readonly TableModel[], partial: boolean): Promise<void> {
  const { config, result, emit, opts } = run;
  const journal = journalLanes(run.catalog, { label: 'catalog', url: config.catalog });
  const shardStats = new Map(result.shards.map((s) => [s.shard, s]));
  // A row with several routes may belong to units of two batches bound for the same shard: those
  // batches run one after the other (each deletes and re-copies it), never side by side.
  const oneAtATime = new Map(config.shards.map((s) => [s.id, pLimit(1)]));
  const multi = sharded.some((t) => t.config.routes);
  const serial = <T>(b: Batch, fn: () => Promise<T>): Promise<T> => (multi ? oneAtATime.get(b.shard)!(fn) : fn());
  await Promise.all(
    batches.map(async (batch) => {
      if (opts.signal?.aborted) return;
      const stats = shardStats.get(batch.shard)!;
      // the preflight's list of the shard's units holds for the first attempt only (a lost commit
      // acknowledgement may have left the batch's rows there)
      const held = run.present.get(batch.shard);
      const mayHold = (first: boolean) => (u: string) => !first || !held || held.has(u) || run.placed.get(u) === batch.shard;
      const runCells = (first: boolean): RunCells | undefined =>
        run.cells && { snapshot: run.cells.snapshot, staged: run.cells.staged, shardMayHold: mayHold(first) };
      // Issue 26: where the shard held none of the batch's units, the DELETE of their rows there
      // (a statement spelling every unit, a key lookup per unit) would delete nothing. Rows with
      // several routes may have been copied by an earlier batch of this very run: never skipped.
      const holdsNone = (first: boolean) => !multi && !batch.units.some(mayHold(first));
      // none of the units was placed when the run began: the journal has no placement to replace
      const fresh = !batch.units.some((u) => run.placed.has(u));
      const runBatch = (first: boolean) =>
        copyBatch(batch, {
          runCells: runCells(first),
          shardHoldsNone: holdsNone(first),
          model: run.model,
          source: run.source,
          target: shardEndpoint(config, batch.shard),
          tables: sharded,
          verify: opts.verify !== false,
          fireTriggers: opts.fireTriggers,
          signal: opts.signal,
          snapshot: opts.snapshot,
          formats: run.formats?.get(batch.shard),
          onBytes: (n) => emit({ type: 'bytes', shard: batch.shard, bytes: n }),
          onTable: (table, rows, bytes, format) => emit({ type: 'table', shard: batch.shard, table, units: batch.units.length, rows, bytes, format }),
        });
      try {
        const r = await run.limit(() => serial(batch, async () => {
          await opts.throttle?.wait();
          if (opts.signal?.aborted) return undefined;
          try {
            return await runBatch(true);
          } catch (e) {
            // A dropped connection is retried once on fresh connections; the batch is all-or-nothing.
            if (opts.signal?.aborted || !isConnectionLoss(e)) throw e;
            emit({ type: 'batch-error', shard: batch.shard, units: [...batch.units], error: failureText(e, `shard ${batch.shard}`), retrying: true });
            return runBatch(false);
          }
        }));
        if (!r) return;
        // Journaled outside the stream slot: the next batch copies while the catalog takes this
        // one's placements (a batch of many units writes as many rows there). Until the journal
        // commits, the units are not placed: a crash in between leaves rows a rerun deletes and copies again.
        const journaled = performance.now();
        await journal.run((c) => recordPlacements(c, run.runId, batch.shard, r.placed, partial ? sharded.map((t) => t.name) : undefined, fresh));
        const seconds = { ...r.seconds, journal: (performance.now() - journaled) / 1000 };
        stats.rows += r.rows;
        stats.bytes += r.bytes;
        stats.failed += r.failed.length;
        result.rows += r.rows;
        result.bytes += r.bytes;
        result.units.copied += r.placed.count;
        result.units.failed += r.failed.length;
        for (const f of r.failed) result.failures.push({ ...f, shard: batch.shard });
        emit({ type: 'batch', shard: batch.shard, units: [...batch.units], rows: r.rows, bytes: r.bytes, failed: r.failed, seconds });
      } catch (e) {
        if (opts.signal?.aborted) return;
        const error = failureText(e, `shard ${batch.shard}`);
        result.errors.push({ shard: batch.shard, units: [...batch.units], error, unreachable: unreachable(e) });
        emit({ type: 'batch-error', shard: batch.shard, units: [...batch.units], error, retrying: false });
      }
    }),
  ).finally(() => journal.close()); // the second catalog session, if one was opened
}

/** The batch could not reach a server (refused, lost, not allowed in): exit 3 rather than 1. */
const unreachable = (e: unknown): boolean => isConnectionLoss(e) || isConnectError(e);
