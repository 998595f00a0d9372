import type pg from 'pg';
import { withRun } from '../catalog/run.js';
import { deleteOnline, readOnline, setOnline } from '../catalog/online.js';
import type { Config } from '../config/types.js';
import { connect, withClient, withTransaction } from '../db/connect.js';
import { shardEndpoint, sourceEndpoint } from '../db/endpoints.js';
import { blockedError, UserError } from '../errors.js';
import { redactText } from '../redact.js';
import { lsnText, type Lsn } from '../db/lsn.js';
import { MIGRATION_STREAM, REVERSE_STREAM } from '../stream/names.js';
import { loadModel } from '../tables/model.js';
import { alignSourceSequences } from '../sequences/align.js';
import { describeFinding, verify } from '../verify/index.js';
import { fenceSource, liftSourceFence } from '../fence/source-fence.js';
import { closeReverse, markShards, reverseSlots, waitForMonolith } from './reverse-stream.js';

export interface RollbackOptions {
  /** seconds to wait for writers in flight on the shards and for the reverse follower to catch up; default 60 */
  timeoutSeconds?: number;
  /** Ctrl-C: lifts the shard fence if one is held and ends with an interrupted UserError (exit 130) */
  signal?: AbortSignal;
  onEvent?: (e: RollbackEvent) => void;
}

export type RollbackStep = 'fenced' | 'caught-up' | 'verified' | 'sequences' | 'recorded' | 'unfenced' | 'follower-stopped';
export type RollbackEvent = { type: 'rollback-step'; step: RollbackStep; seconds: number; detail?: string };

export interface RollbackResult {
  ok: boolean;
  /** an earlier run had already rolled back (this one finished its clean-up) */
  already: boolean;
  /** how long writes to the shards were refused before the monolith took them again */
  outageMs: number;
  /** the WAL position of each shard at its fence, which the monolith was brought past */
  marks: Record<string, string>;
  sequences: number;
  /** shards whose reverse slot was dropped */
  slotsDropped: string[];
}

/**
 * Undoes a cutover within its rollback window (`cutover --reverse`, `rollback --follow` running):
 * fences every configured table on every shard (the table fence: all units, also ones created after
 * the cutover, all isolation levels), marks each shard's WAL and waits until the monolith has
 * committed every shard's stream past its mark, verifies every unit (counts and checksums, monolith
 * vs shards, both quiet), sets the monolith's sequences past every id the shards handed out,
 * records the rollback in the catalog, lifts the monolith's cutover fence, stops the reverse
 * follower and drops its slots. The shard fence stays: the shards are stale from now on. On a
 * timeout or any failure before the record, the shard fence is lifted (the shards stay the source
 * of truth, the follower keeps following) and a UserError (exit 3) says why. Rerun-safe.
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
      return { ok: true, already: true, outageMs: rev.outageMs ?? 0, marks: {}, sequences: 0, slotsDropped };
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
    const started = Date.now();
    const fencedAt = rev.fencedAt ?? new Date();
    const since = () => (Date.now() - started) / 1000;
    const shards = await Promise.all(config.shards.map((s) => connect(shardEndpoint(config, s.id), { applicationName: 'shardctl rollback' })));
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
      try {
        await setOnline(catalog.client, REVERSE_STREAM, 'fenced', { fencedAt });
        emit({ type: 'rollback-step', step: 'fenced', seconds: since() });
        opts.signal?.throwIfAborted();
        marks = await markShards(shards);
        await waitForMonolith(config, marks, started + timeoutMs, opts.signal);
        emit({ type: 'rollback-step', step: 'caught-up', seconds: since() });
        opts.signal?.throwIfAborted();
        const v = await verify(config, {});
        if (!v.ok) {
          const first = v.findings.slice(0, 3).map((f) => describeFinding(f, v)).map((d) => `${d.tag} ${d.text}`);
          throw blockedError(`verify found ${v.findings.length + v.errors.length} difference(s) between the monolith and the shards; the shard fence is lifted`, {
            details: [...first, ...v.errors.slice(0, 3).map((e) => `${e.server}: ${e.message}`)],
            hint: 'the shards stay the source of truth and the reverse follower keeps following; run shardctl verify for the full report',
          });
        }
        emit({ type: 'rollback-step', step: 'verified', seconds: since() });
        opts.signal?.throwIfAborted();
        sequences = await alignSourceSequences(config, model.tables, source);
        emit({ type: 'rollback-step', step: 'sequences', seconds: since() });
        opts.signal?.throwIfAborted();
      } catch (e) {
        await liftShards(shards, tables);
        await setOnline(catalog.client, REVERSE_STREAM, 'following', { fencedAt: null });
        if (opts.signal?.aborted) {
          throw new UserError('interrupted', 'rollback interrupted: the shard fence is lifted, the shards take writes again and stay the source of truth; the reverse follower keeps following', { hint: 'run shardctl rollback again' });
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
      await withClient(source, (c) => liftSourceFence(c, tables));
      emit({ type: 'rollback-step', step: 'unfenced', seconds: since() });
      const slotsDropped = await closeReverse(config);
      emit({ type: 'rollback-step', step: 'follower-stopped', seconds: since() });
      return { ok: true, already: false, outageMs, marks: Object.fromEntries(config.shards.map((s, i) => [s.id, lsnText(marks[i]!)])), sequences, slotsDropped };
    } finally {
      await Promise.all(shards.map((c) => c.end().catch(() => undefined)));
    }
  });
}

async function liftShards(shards: readonly pg.ClientBase[], tables: readonly string[]): Promise<void> {
  await Promise.all(shards.map((c) => liftSourceFence(c, tables, 'rollback')));
}
