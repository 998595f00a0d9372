import type pg from 'pg';
import { withRun } from '../catalog/run.js';
import type { Config } from '../config/types.js';
import { connect, withClient } from '../db/connect.js';
import { blockedError, UserError } from '../errors.js';
import { alignFleetSequences, scannedSequenceColumns, scanWarning } from '../sequences/align.js';
import { shardEndpoint, sourceEndpoint } from '../db/endpoints.js';
import { redactText } from '../redact.js';
import { loadModel } from '../tables/model.js';
import { readPlacements } from '../catalog/placements.js';
import { checkChangedRows } from '../row-proof/changed.js';
import { qualifiedName } from '../tables/scope.js';
import { provedTables } from './prover.js';
import { holdProver } from '../row-proof/prune.js';
import { settleRecord } from '../row-proof/settle.js';
import { recordForeignWrites, stopRecordingWrites } from '../stream/foreign-writes.js';
import { placedButGone, strandedRows } from './gone-units.js';
import { fenceSource, liftSourceFence } from '../fence/source-fence.js';
import { checkFollowerLag, type LagBound } from './lag-gate.js';
import { lsnText, ZERO_LSN, type Lsn } from '../db/lsn.js';
import { sendControl } from '../stream/control.js';
import { MIGRATION_STREAM, type StreamNames } from '../stream/names.js';
import { readPosition } from '../stream/positions.js';
import { recordNewUnits } from './placements.js';
import { atCutover, checkShardsForReverse, cutoverFailed } from '../rollback/reverse-stream.js';
import { dropStream, slotState } from '../stream/slot.js';
import { assertCopyStorage } from '../stream/rewrite.js';
import { readOnline, setOnline } from '../catalog/online.js';

export interface CutoverOptions {
  /** seconds to wait for writers in flight and for the follower to catch up; default 60 */
  timeoutSeconds?: number;
  /** keep a reverse stream (shards → monolith) so the cutover can be rolled back (rollback/reverse-stream.ts) */
  reverse?: boolean;
  /** refuse to fence when the follower is further behind (lag-gate.ts; defaults: health's lag warnings) */
  maxLag?: LagBound;
  /** Ctrl-C: lifts the fence if one is held and ends with an interrupted UserError (exit 130) */
  signal?: AbortSignal;
  onEvent?: (e: CutoverEvent) => void;
}

export type CutoverStep = 'fenced' | 'caught-up' | 'verified' | 'sequences' | 'reverse-opened' | 'recorded' | 'follower-stopped';
/** what each step of the outage took, in ms (fenced … recorded; follower-stopped comes after the outage) */
export type CutoverPhases = Partial<Record<CutoverStep, number>>;
export type CutoverEvent = { type: 'cutover-step'; step: CutoverStep; seconds: number; detail?: string } | { type: 'cutover-warning'; message: string };

export interface CutoverResult {
  ok: boolean;
  /** the cutover had already been done by an earlier run */
  already: boolean;
  /** how long writes to the monolith were refused before the shards were the source of truth */
  outageMs: number;
  barrierLsn?: string;
  units: number;
  sequences: number;
  /** changed rows (since the copy) compared between the monolith and the shards inside the fence */
  checkedRows: number;
  phasesMs: CutoverPhases;
  /** with `reverse`: each shard's reverse stream start position (the rollback window is open) */
  reverse?: Record<string, string>;
}

/**
 * Ends an online migration: fences writes to the configured tables on the monolith, marks the
 * source's WAL (a barrier message every write before the fence precedes), waits until every shard
 * has committed the stream past it, compares every row the follower changed since the copy
 * (monolith vs shards, both quiet: see changed.ts — the work grows with the changes, not the data),
 * aligns sequences, records the cutover in the catalog and stops the follower (which
 * exits 0). The fence stays: the monolith refuses writes from now on. On a timeout or any failure
 * the fence is lifted (writes resume on the monolith, the follower keeps following) and a UserError
 * (exit 3) says why. A rerun after a crash continues; after success it is a no-op.
 */
export async function cutover(config: Config, opts: CutoverOptions = {}): Promise<CutoverResult> {
  const names = MIGRATION_STREAM;
  const timeoutMs = (opts.timeoutSeconds ?? 60) * 1000;
  const emit = opts.onEvent ?? (() => undefined);
  const source = sourceEndpoint(config);
  return withRun(config.catalog, { command: 'cutover', lock: 'cutover', busy: 'another shardctl cutover or abandon is running' }, async ({ catalog }) => {
    const state = await readOnline(catalog.client, names);
    if (!state) throw blockedError('there is no online migration to cut over', { hint: 'start one with shardctl migrate --follow' });
    if (state.state === 'copying') throw blockedError('the online migration is still copying; cut over once it follows', { hint: 'wait for migrate --follow to report that it follows' });
    if (state.state === 'cut-over') {
      await withClient(source, (c) => stopFollower(c, names, 15_000)); // a crash may have come before this step
      const tables = config.tables.map((t) => qualifiedName(t));
      for (const s of config.shards) await withClient(shardEndpoint(config, s.id), (c) => stopRecordingWrites(c, tables, 5000)); // the shards take writes now: never queue behind them for long
      return { ok: true, already: true, outageMs: state.outageMs ?? 0, barrierLsn: state.barrierLsn ?? undefined, units: 0, sequences: 0, checkedRows: 0, phasesMs: {} };
    }
    // a table rewritten since the copy (the follower stops on it too): refused whether the follower runs or not
    await withClient(source, (c) => withClient(shardEndpoint(config, config.shards[0]!.id), (s) => assertCopyStorage(c, s, names.slot)));
    const slot = await withClient(source, (c) => slotState(c, names));
    if (!slot?.active) {
      throw blockedError(`the follower is not running (slot ${names.slot} has no consumer), so the shards cannot catch up`, {
        hint: 'start shardctl migrate --follow, then run cutover again',
      });
    }
    const model = await withClient(source, (c) => loadModel(config, c));
    const tables = model.tables.map((t) => t.name);
    if (opts.reverse) await checkShardsForReverse(config, tables);
    await checkFollowerLag(config, opts.maxLag);
    const interrupted = () => {
      if (opts.signal?.aborted) throw new UserError('interrupted', 'cutover interrupted: the monolith is not fenced and takes writes; the follower keeps following', { hint: 'run shardctl cutover again' });
    };
    interrupted();
    // everything that needs no fence is ready before it: connections, the catalog's placements
    const placements = await readPlacements(catalog.client);
    const gone = await placedButGone(source, model, placements);
    const warning = scanWarning(await withClient(source, (c) => scannedSequenceColumns(c, model.tables)));
    if (warning) emit({ type: 'cutover-warning', message: warning });
    const shards = new Map<string, pg.Client>();
    await settleRecord(config.shards.map((s) => shardEndpoint(config, s.id)), [names.slot], provedTables(model), timeoutMs, { applicationName: 'shardctl cutover', signal: opts.signal });
    interrupted();
    const src = await connect(source, { applicationName: 'shardctl cutover' });
    // no proving round holds the follower back inside the fence (taken before it: not part of the outage)
    await holdProver(src, timeoutMs, 'cutover').catch(async (e: unknown) => {
      await src.end().catch(() => undefined);
      throw e;
    });
    const started = Date.now();
    const fencedAt = state.fencedAt ?? new Date();
    const since = () => (Date.now() - started) / 1000;
    const phasesMs: CutoverPhases = {};
    let recording = true;
    let mark = started;
    const step = (s: CutoverStep, detail?: string) => {
      const now = Date.now();
      phasesMs[s] = now - mark;
      mark = now;
      emit({ type: 'cutover-step', step: s, seconds: since(), detail });
    };
    try {
      for (const s of config.shards) shards.set(s.id, await connect(shardEndpoint(config, s.id), { applicationName: 'shardctl cutover' }));
      try {
        await fenceSource(src, tables, timeoutMs, 'cutover', 'the monolith');
      } catch (e) {
        throw blockedError(`could not fence the monolith within ${timeoutMs / 1000}s: ${redactText((e as Error).message)}`, { hint: 'long transactions hold the tables; retry when they are done, or with a longer --timeout' });
      }
      try {
        await setOnline(catalog.client, names, 'fenced', { fencedAt });
        step('fenced');
        interrupted();
        const barrier = await sendControl(src, { kind: 'barrier' });
        await setOnline(catalog.client, names, 'fenced', { barrierLsn: lsnText(barrier) });
        await waitForShards(shards, names, barrier, started + timeoutMs, opts.signal);
        step('caught-up', lsnText(barrier));
        await assertCopyStorage(src, shards.values().next().value!, names.slot); // and none up to the fence
        interrupted();
        const changed = await checkChangedRows(model, names.slot, src, shards, placements);
        if (changed.problems.length) {
          throw blockedError(`the monolith and the shards differ in ${changed.problems.length}${changed.problems.length >= 50 ? '+' : ''} of the ${changed.rows} rows changed while following`, {
            details: changed.problems.slice(0, 5),
            hint: 'the fence is lifted and the follower keeps following; run shardctl verify for the full report',
          });
        }
        const stranded = await strandedRows(config, model, source, gone);
        if (stranded.length) {
          throw blockedError(`${stranded.length} unit(s) placed on the shards are gone from the monolith, and their rows are still there`, {
            details: stranded.slice(0, 5),
            hint: 'the fence is lifted and the follower keeps following; start over with shardctl migrate --abandon, then shardctl migrate --follow (its copy removes them)',
          });
        }
        step('verified', `${changed.rows} changed rows`);
        let sequences = 0;
        interrupted();
        for (const n of (await alignFleetSequences(config, model.tables, source, undefined, { shardsProven: true, deadline: started + timeoutMs })).values()) sequences += n;
        step('sequences');
        interrupted();
        const reverse = await atCutover(config, catalog.client, model.tables, Boolean(opts.reverse), timeoutMs);
        if (reverse) step('reverse-opened');
        // the shards stop recording foreign writes before they take the application's (quiet: fast)
        await Promise.all([...shards.values()].map((c) => stopRecordingWrites(c, tables, Math.max(1, started + timeoutMs - Date.now()))));
        recording = false;
        const units = await recordNewUnits(catalog.client, changed.newUnits);
        const outageMs = Date.now() - fencedAt.getTime();
        await setOnline(catalog.client, names, 'cut-over', { cutoverAt: new Date(), outageMs });
        step('recorded');
        // the outage is over: the rest is cleanup
        await stopFollower(src, names, 15_000);
        step('follower-stopped');
        return { ok: true, already: false, outageMs, barrierLsn: lsnText(barrier), units, sequences, checkedRows: changed.rows, phasesMs, reverse };
      } catch (e) {
        // the window it opened closes while the monolith is quiet (its write record comes off quickly); health shows one left open
        await cutoverFailed(config, catalog.client, Boolean(opts.reverse)).catch(() => undefined);
        // writes resume on the monolith; the follower keeps following
        await liftSourceFence(src, tables);
        if (!recording) await Promise.all([...shards.values()].map((c) => recordForeignWrites(c, names.slot, model.tables))).catch(() => undefined);
        await setOnline(catalog.client, names, 'following', { fencedAt: null, barrierLsn: null });
        if (opts.signal?.aborted) {
          throw new UserError('interrupted', 'cutover interrupted: the fence is lifted, the monolith takes writes again and the follower keeps following', { hint: 'run shardctl cutover again' });
        }
        if (e instanceof UserError) throw e;
        throw blockedError(`cutover failed: ${redactText((e as Error).message)}; the fence is lifted`, { cause: e });
      }
    } finally {
      await Promise.all([src, ...shards.values()].map((c) => c.end().catch(() => undefined)));
    }
  });
}

/** Polls every shard's committed stream position until all are past `barrier`, or times out. */
async function waitForShards(shards: ReadonlyMap<string, pg.ClientBase>, names: StreamNames, target: Lsn, deadline: number, signal?: AbortSignal): Promise<void> {
  for (;;) {
    signal?.throwIfAborted(); // the caller lifts the fence
    const at = await Promise.all([...shards].map(async ([shard, c]) => ({ shard, at: (await readPosition(c, names.slot)) ?? ZERO_LSN })));
    const behind = at.filter((x) => x.at <= target);
    if (behind.length === 0) return;
    if (Date.now() > deadline) {
      throw blockedError(`the follower did not catch up with the fence in time: ${behind.map((b) => `shard ${b.shard}`).join(', ')} still behind the monolith's position ${lsnText(target)}; the fence is lifted`, {
        hint: 'check that migrate --follow is running and keeping up (its lag), then run cutover again, perhaps with a longer --timeout',
      });
    }
    // the write outage lasts until this sees the follower's commit: poll often (one indexed read per shard)
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Tells the follower to finish (it exits 0 at the stop message), waits for it, then drops slot and publication. */
async function stopFollower(c: pg.ClientBase, names: StreamNames, waitMs: number): Promise<void> {
  if ((await slotState(c, names))?.active) {
    await sendControl(c, { kind: 'stop' });
    const until = Date.now() + waitMs;
    while (Date.now() < until && (await slotState(c, names))?.active) await new Promise((r) => setTimeout(r, 50));
  }
  await dropStream(c, names);
}
