import type pg from 'pg';
import { withRun } from '../catalog/run.js';
import { deleteOnline, readOnline, setOnline } from '../catalog/online.js';
import type { Config } from '../config/types.js';
import { connect, withClient, withTransaction } from '../db/connect.js';
import { shardEndpoint, sourceEndpoint } from '../db/endpoints.js';
import { blockedError, UserError } from '../errors.js';
import { redactText } from '../redact.js';
import { lsnText, type Lsn } from '../db/lsn.js';
import { MIGRATION_STREAM, REVERSE_STREAM, reverseKey } from '../stream/names.js';
import { loadModel, type Model } from '../tables/model.js';
import { checkChangedBack } from './changed-back.js';
import { setDeadline } from '../db/deadline.js';
import { alignSourceSequences, scannedSequenceColumns, scanWarning } from '../sequences/align.js';
import { fenceSource, liftSourceFence } from '../fence/source-fence.js';
import { readPlacements } from '../catalog/placements.js';
import { stopRecordingWrites } from '../stream/foreign-writes.js';
import { holdProver, provedTables } from '../row-proof/prune.js';
import { settleRecord } from '../row-proof/settle.js';
import { closeReverse, markShards, reverseSlots, waitForMonolith } from './reverse-stream.js';

export interface RollbackOptions {
  /** seconds the shard fence may be held, end to end: writers in flight, the catch-up, the check, sequences; default 60 */
  timeoutSeconds?: number;
  /** Ctrl-C: lifts the shard fence if one is held and ends with an interrupted UserError (exit 130) */
  signal?: AbortSignal;
  onEvent?: (e: RollbackEvent) => void;
}

export type RollbackStep = 'fenced' | 'caught-up' | 'verified' | 'sequences' | 'recorded' | 'unfenced' | 'follower-stopped';
export type RollbackEvent = { type: 'rollback-step'; step: RollbackStep; seconds: number; detail?: string } | { type: 'rollback-warning'; message: string };

export interface RollbackResult {
  ok: boolean;
  /** an earlier run had already rolled back (this one finished its clean-up) */
  already: boolean;
  /** how long writes to the shards were refused before the monolith took them again */
  outageMs: number;
  /** the WAL position of each shard at its fence, which the monolith was brought past */
  marks: Record<string, string>;
  sequences: number;
  /** rows changed during the window, compared between the monolith and the shards inside the fence */
  checkedRows: number;
  /** shards whose reverse slot was dropped */
  slotsDropped: string[];
}

/**
 * Undoes a cutover within its rollback window (`cutover --reverse`, `rollback --follow` running):
 * fences every configured table on every shard (the table fence: all units, also ones created after
 * the cutover, all isolation levels), marks each shard's WAL and waits until the monolith has
 * committed every shard's stream past its mark, compares the rows changed during the window,
 * monolith vs shards, both quiet (changed-back.ts says why that proves them equal;
 * the work grows with the changes since the reverse prover's last round, prove-back.ts, not with the data), sets the monolith's sequences past every id the
 * shards handed out, records the rollback in the catalog, lifts the monolith's cutover fence, stops
 * the reverse follower and drops its slots. The shard fence stays: the shards are stale from now
 * on. Everything behind the shard fence ends by `timeoutSeconds` after the fencing began (each
 * statement's timeout is what is left). On a missed bound or any failure before the record, the
 * shard fence is lifted (the shards stay the source of truth, the follower keeps following) and a
 * UserError (exit 3) says why. Rerun-safe.
 */
export async function rollback(config: Config, opts: RollbackOptions = {}): Promise<RollbackResult> {
  const timeoutMs = (opts.timeoutSeconds ?? 60) * 1000;
  const emit = opts.onEvent ?? (() => undefined);
  const source = sourceEndpoint(config);
  return withRun(config.catalog, { command: 'rollback', lock: 'cutover', busy: 'another shardctl cutover, rollback or abandon is running' }, async ({ catalog }) => {
    const rev = await readOnline(catalog.client, REVERSE_STREAM);
    const model = await withClient(source, (c) => loadModel(config, c));
    const tables = model.tables.map((t) => t.name);
    if (rev?.state === 'rolled-back') {
      // a crash may have come after the record: finish the clean-up
      await withClient(source, (c) => liftSourceFence(c, tables));
      const slotsDropped = await closeReverse(config);
      return { ok: true, already: true, outageMs: rev.outageMs ?? 0, marks: {}, sequences: 0, checkedRows: 0, slotsDropped };
    }
    if (!rev) {
      throw blockedError('there is no rollback window: the cutover did not keep a reverse stream, or cutover --finish ended it', {
        hint: 'a cutover keeps one with shardctl cutover --reverse',
      });
    }
    const fwd = await readOnline(catalog.client, MIGRATION_STREAM);
    if (fwd?.state !== 'cut-over') throw blockedError('the cutover that opened the rollback window is not recorded; there is nothing to roll back', { hint: 'run shardctl cutover --reverse again to finish it' });
    const slots = await reverseSlots(config);
    if (slots.missing.length) {
      throw blockedError(`the reverse slot is gone from shard(s) ${slots.missing.join(', ')}: changes written there since cannot reach the monolith`, {
        hint: 'the shards stay the source of truth; end the window with shardctl cutover --finish',
      });
    }
    if (slots.idle.length) {
      throw blockedError(`the reverse follower is not running (no consumer on shard(s) ${slots.idle.join(', ')}), so the monolith cannot catch up`, {
        hint: 'start shardctl rollback --follow, then run rollback again',
      });
    }
    // before the fence: what needs none (the placements the check routes by, the warning about scans)
    const placements = await readPlacements(catalog.client);
    const warning = scanWarning(await withClient(source, (c) => scannedSequenceColumns(c, model.tables)));
    if (warning) emit({ type: 'rollback-warning', message: warning });
    // the reverse prover works a burst of the window's writes down before the fence, not inside it
    await settleRecord([source], config.shards.map((s) => reverseKey(s.id)), provedTables(model), timeoutMs, { applicationName: 'shardctl rollback', signal: opts.signal });
    if (opts.signal?.aborted) throw new UserError('interrupted', 'rollback interrupted before it fenced anything: the shards stay the source of truth', { hint: 'run shardctl rollback again' });
    // no proving round (prove-back.ts) holds the catch-up back inside the fence: taken before it, not part of the outage
    const held = await connect(source, { applicationName: 'shardctl rollback' });
    const endHeld = async (e: unknown) => {
      await held.end().catch(() => undefined);
      throw e;
    };
    await holdProver(held, timeoutMs, 'rollback').catch(endHeld);
    const started = Date.now();
    const deadline = started + timeoutMs;
    const fencedAt = rev.fencedAt ?? new Date();
    const since = () => (Date.now() - started) / 1000;
    const shards = await Promise.all(config.shards.map((s) => connect(shardEndpoint(config, s.id), { applicationName: 'shardctl rollback' }))).catch(endHeld);
    try {
      try {
        await Promise.all(shards.map((c, i) => fenceSource(c, tables, timeoutMs, 'rollback', `shard ${config.shards[i]!.id}`)));
      } catch (e) {
        await liftShards(shards, tables);
        throw blockedError(`could not fence the shards within ${timeoutMs / 1000}s: ${redactText((e as Error).message)}; the shard fence is lifted`, {
          hint: 'long transactions hold the tables on a shard; retry when they are done, or with a longer --timeout',
        });
      }
      let marks: Lsn[];
      let sequences = 0;
      let checkedRows = 0;
      let doing = 'fencing';
      try {
        await setOnline(catalog.client, REVERSE_STREAM, 'fenced', { fencedAt });
        emit({ type: 'rollback-step', step: 'fenced', seconds: since() });
        opts.signal?.throwIfAborted();
        doing = 'waiting for the reverse follower';
        marks = await markShards(shards);
        await waitForMonolith(config, marks, deadline, opts.signal);
        emit({ type: 'rollback-step', step: 'caught-up', seconds: since() });
        opts.signal?.throwIfAborted();
        doing = 'checking the rows changed during the window';
        checkedRows = await checkWindow(config, model, shards, placements, deadline);
        emit({ type: 'rollback-step', step: 'verified', seconds: since(), detail: `${checkedRows} changed rows` });
        opts.signal?.throwIfAborted();
        doing = "setting the monolith's sequences";
        sequences = await alignSourceSequences(config, model.tables, source, { shardsProven: true, deadline });
        emit({ type: 'rollback-step', step: 'sequences', seconds: since() });
        opts.signal?.throwIfAborted();
      } catch (e) {
        await liftShards(shards, tables);
        await setOnline(catalog.client, REVERSE_STREAM, 'following', { fencedAt: null });
        if (opts.signal?.aborted) {
          throw new UserError('interrupted', 'rollback interrupted: the shard fence is lifted, the shards take writes again and stay the source of truth; the reverse follower keeps following', { hint: 'run shardctl rollback again' });
        }
        if (timedOut(e)) {
          throw blockedError(`rollback did not finish ${doing} within --timeout (${timeoutMs / 1000}s of shard fence); the shard fence is lifted`, {
            hint: 'the shards stay the source of truth and the reverse follower keeps following; look for sessions holding the monolith\'s tables, then run rollback again, perhaps with a longer --timeout',
          });
        }
        if (e instanceof UserError) throw e;
        throw blockedError(`rollback failed: ${redactText((e as Error).message)}; the shard fence is lifted`, { cause: e });
      }
      // From the record on the monolith is the source of truth: a rerun only finishes the clean-up.
      const outageMs = Date.now() - fencedAt.getTime();
      await withTransaction(catalog.client, async () => {
        await setOnline(catalog.client, REVERSE_STREAM, 'rolled-back', { cutoverAt: new Date(), outageMs });
        await deleteOnline(catalog.client, MIGRATION_STREAM);
      });
      emit({ type: 'rollback-step', step: 'recorded', seconds: since() });
      // the window's record of monolith writes ends while the monolith is quiet (closeReverse tries again)
      await withClient(source, (c) => stopRecordingWrites(c, tables, 5000)).catch(() => undefined);
      await withClient(source, (c) => liftSourceFence(c, tables));
      emit({ type: 'rollback-step', step: 'unfenced', seconds: since() });
      const slotsDropped = await closeReverse(config);
      emit({ type: 'rollback-step', step: 'follower-stopped', seconds: since() });
      return { ok: true, already: false, outageMs, marks: Object.fromEntries(config.shards.map((s, i) => [s.id, lsnText(marks[i]!)])), sequences, checkedRows, slotsDropped };
    } finally {
      await Promise.all([held, ...shards].map((c) => c.end().catch(() => undefined)));
    }
  });
}

async function liftShards(shards: readonly pg.ClientBase[], tables: readonly string[]): Promise<void> {
  await Promise.all(shards.map(async (c) => {
    await c.query('RESET statement_timeout').catch(() => undefined); // the check's bound (checkWindow) is not the lift's
    await liftSourceFence(c, tables, 'rollback');
  }));
}

/** A statement cancelled by the deadline's statement_timeout, or a lock wait past its lock_timeout (maybe wrapped by pgFailure). */
function timedOut(e: unknown): boolean {
  for (let x = e as { code?: string; cause?: unknown } | undefined, i = 0; x && i < 5; x = x.cause as typeof x, i++) {
    if (x.code === '57014' || x.code === '55P03') return true;
  }
  return false;
}

/**
 * Inside the fence, after the catch-up: the rows changed during the window, monolith vs shards
 * (changed-back.ts), every statement ending by `deadline`. Refuses (UserError) on any difference.
 * Returns the rows compared.
 */
async function checkWindow(config: Config, model: Model, shards: readonly pg.ClientBase[], placements: ReadonlyMap<string, string>, deadline: number): Promise<number> {
  const bound = (c: pg.ClientBase) => setDeadline(c, deadline);
  await Promise.all(shards.map(bound));
  const changed = await withClient(sourceEndpoint(config), async (c) => {
    await bound(c);
    return checkChangedBack(config, model, c, new Map(config.shards.map((s, i) => [s.id, shards[i]!])), placements);
  });
  await Promise.all(shards.map((c) => c.query('RESET statement_timeout')));
  if (changed.problems.length) {
    throw blockedError(`the monolith and the shards differ in ${changed.problems.length}${changed.problems.length >= 50 ? '+' : ''} of the ${changed.rows} rows changed during the rollback window; the shard fence is lifted`, {
      details: changed.problems.slice(0, 5),
      hint: 'the shards stay the source of truth and the reverse follower keeps following; run shardctl verify for the full report',
    });
  }
  return changed.rows;
}
