import { withRun } from '../catalog/run.js';
import { REVERSE_LOCK_CLASS } from '../catalog/locks.js';
import { readOnline } from '../catalog/online.js';
import type { Config } from '../config/types.js';
import { connect, withClient, type Endpoint } from '../db/connect.js';
import { shardEndpoint, sourceEndpoint } from '../db/endpoints.js';
import { pgFailure } from '../db/pg-error.js';
import { blockedError, UserError } from '../errors.js';
import { redactText } from '../redact.js';
import { Applier, type ShardSession } from '../stream/apply.js';
import { lsnText } from '../db/lsn.js';
import { MIGRATION_STREAM, REVERSE_STREAM, reverseKey } from '../stream/names.js';
import { prepareShardState, readPosition } from '../stream/positions.js';
import { RouteError, type RowRouter } from '../stream/route.js';
import { sourceShapes } from '../stream/shape.js';
import { Statements } from '../stream/statements.js';
import { applyStream, startHeartbeat } from '../stream/follower.js';
import { loadModel, type Model } from '../tables/model.js';
import { mayBypassTriggers } from '../foreign-keys/after-copy-check.js';
import { FOLLOWER_SESSION_SQL } from '../stream/foreign-writes.js';
import { startReverseProver } from './prove-back.js';

export type FollowBackEvent =
  | { type: 'reverse-start'; shard: string; from: string }
  | { type: 'reverse-progress'; shard: string; appliedLsn: string; lagBytes: number | null; changes: number; changesPerSecond: number }
  | { type: 'reverse-stop'; shard: string; reason: 'stopped' | 'interrupted' | 'error'; appliedLsn: string; message?: string }
  | { type: 'reverse-warning'; message: string };

export interface FollowBackOptions {
  heartbeatMs?: number;
  signal?: AbortSignal;
  onEvent?: (e: FollowBackEvent) => void;
}

export interface FollowBackResult {
  /** 'stopped': rollback or cutover --finish ended the window; 'closed': there was no window to follow */
  stopped: 'stopped' | 'closed';
  applied: number;
  shards: { shard: string; appliedLsn: string; applied: number }[];
  /** changed rows proven while following, whose records rollback's fence no longer checks (prove-back.ts) */
  proven: number;
  seconds: number;
}

const BATCH_CHANGES = 2000;
const BATCH_MS = 200;

/**
 * `rollback --follow`: during the rollback window keeps the monolith equal to the shards, applying
 * every shard's reverse slot to the monolith (one stream per shard, at once). The routing is the
 * identity: every row goes to the one monolith; reference tables, the same rows on every shard,
 * are taken from the first shard's stream only. Exactly once in effect, as the forward follower:
 * each stream's position is committed on the monolith in the transaction of the changes it covers,
 * and its slot is confirmed only up to that. It writes through the monolith's cutover fence (every
 * shardctl session carries the bypass setting the fence lets through). Runs until `rollback` or
 * `cutover --finish` stops it (exit 0); run it again after any crash.
 */
export async function followBack(config: Config, opts: FollowBackOptions = {}): Promise<FollowBackResult> {
  const started = performance.now();
  const spec = { command: 'rollback --follow', args: { follow: true }, lock: 'run' as const, outcome: (r: FollowBackResult) => ({ status: 'ok' as const, summary: r }) };
  return withRun(config.catalog, spec, async (scope) => {
    const rev = await readOnline(scope.catalog.client, REVERSE_STREAM);
    const fwd = await readOnline(scope.catalog.client, MIGRATION_STREAM);
    if (!rev || rev.state === 'rolled-back') return { stopped: 'closed', applied: 0, shards: [], proven: 0, seconds: 0 };
    if (fwd?.state !== 'cut-over') {
      throw blockedError('the cutover that opened the reverse stream is not recorded yet', { hint: 'run shardctl cutover --reverse to completion first, then rollback --follow' });
    }
    const model = await withClient(sourceEndpoint(config), (c) => loadModel(config, c));
    // proves the window's changed rows while following, so rollback's fence checks only the last ones
    const prover = await startReverseProver(config, model, { onWarning: (m) => opts.onEvent?.({ type: 'reverse-warning', message: redactText(m) }) });
    const inner = new AbortController();
    const onOuter = () => inner.abort(opts.signal!.reason);
    opts.signal?.addEventListener('abort', onOuter, { once: true });
    try {
      const settled = await Promise.allSettled(
        config.shards.map((s, i) =>
          streamShard(config, model, s.id, i === 0, inner.signal, opts).catch((e) => {
            inner.abort(e); // one stream failing stops them all
            throw e;
          }),
        ),
      );
      const failed = settled.find((x): x is PromiseRejectedResult => x.status === 'rejected');
      if (failed) {
        if (opts.signal?.aborted) {
          throw new UserError('interrupted', 'interrupted: the monolith holds every shard\'s changes up to the positions it committed', { hint: 'run shardctl rollback --follow again to continue from there' });
        }
        // the first real error, not the aborts it caused in the other streams
        const first = settled.map((x) => (x.status === 'rejected' ? x.reason : undefined)).find((e) => e && !(e instanceof Aborted));
        throw first ?? failed.reason;
      }
      const shards = settled.map((x) => (x as PromiseFulfilledResult<{ shard: string; appliedLsn: string; applied: number }>).value);
      return { stopped: 'stopped', applied: shards.reduce((n, s) => n + s.applied, 0), shards, proven: prover.proven(), seconds: (performance.now() - started) / 1000 };
    } finally {
      opts.signal?.removeEventListener('abort', onOuter);
      await prover.stop();
    }
  });
}

class Aborted extends Error {}

/** One shard's reverse stream, applied to the monolith until a stop message, an error or the abort. */
async function streamShard(config: Config, model: Model, shard: string, takesReference: boolean, signal: AbortSignal, opts: FollowBackOptions) {
  const emit = opts.onEvent ?? (() => undefined);
  const from = shardEndpoint(config, shard);
  const key = reverseKey(shard);
  const session = await openMonolith(sourceEndpoint(config), key);
  let heart: { stop(): Promise<void> } | undefined;
  try {
    // the identity route: whatever the table, the row's place is the monolith
    const identity: RowRouter = { route: async () => ({ kind: 'shard', shard: session.id }) };
    const applier = new Applier(model, [session], key, () => identity);
    const shapes = await withClient(from, (c) => sourceShapes(c, model.tables.map((t) => t.name)));
    const reference = new Set(model.tables.filter((t) => t.config.route.kind === 'reference').map((t) => t.name));

    let last = 0;
    let lastBeat = Date.now();
    heart = await startHeartbeat(from, 'shardctl rollback --follow heartbeat', opts.heartbeatMs ?? 1000, (now) => {
      const secs = Math.max(0.001, (Date.now() - lastBeat) / 1000);
      lastBeat = Date.now();
      emit({
        type: 'reverse-progress',
        shard,
        appliedLsn: lsnText(applier.confirmed),
        lagBytes: Math.max(0, Number(now - applier.confirmed)),
        changes: session.applied,
        changesPerSecond: Math.round((session.applied - last) / secs),
      });
      last = session.applied;
    });

    try {
      await applyStream(from, REVERSE_STREAM, session.pos, model, applier, {
        batchChanges: BATCH_CHANGES,
        batchMs: BATCH_MS,
        shapes,
        takes: (table) => takesReference || !reference.has(table), // the first shard's copy of reference rows is applied
        onStart: () => emit({ type: 'reverse-start', shard, from: lsnText(session.pos) }),
        signal,
      });
    } catch (e) {
      const aborted = signal.aborted;
      emit({ type: 'reverse-stop', shard, reason: aborted ? 'interrupted' : 'error', appliedLsn: lsnText(applier.confirmed), message: redactText((e as Error).message) });
      if (aborted) throw new Aborted(`shard ${shard}: stopped`);
      const stopped = `The reverse follower stopped; shard ${shard}'s slot is kept`;
      if (e instanceof RouteError) throw blockedError(`shard ${shard}: ${e.message}. ${stopped}`, { hint: 'run shardctl rollback --follow again' });
      const f = pgFailure(e, `shard ${shard}`);
      if (f instanceof UserError) {
        throw new UserError(f.kind, `${f.message.replace(/^source:/, `shard ${shard}:`)}. ${stopped}`, {
          details: [...f.details],
          hint: f.hint?.replace(/migrate --follow/g, 'rollback --follow') ?? 'run shardctl rollback --follow again to resume from what the monolith committed',
          cause: e,
        });
      }
      throw f;
    }
    emit({ type: 'reverse-stop', shard, reason: 'stopped', appliedLsn: lsnText(applier.confirmed) });
    return { shard, appliedLsn: lsnText(applier.confirmed), applied: session.applied };
  } finally {
    await heart?.stop();
    await session.client.end().catch(() => undefined);
  }
}

/** The monolith session of one shard's stream, holding that stream's lock for its life (see follow.ts). */
async function openMonolith(ep: Endpoint, key: string): Promise<ShardSession> {
  const client = await connect(ep, { applicationName: 'shardctl rollback --follow' });
  try {
    await prepareShardState(client);
    await client.query(FOLLOWER_SESSION_SQL); // its writes are recorded by the applier, not as foreign ones (reverse-stream.ts)
    await client.query(`SET lock_timeout = '60s'`);
    try {
      await client.query('SELECT pg_advisory_lock($1, hashtext($2))', [REVERSE_LOCK_CLASS, key]);
    } catch (e) {
      throw blockedError(`another reverse follower of ${key} is still applying changes to the monolith`, { hint: 'stop it, then run rollback --follow again', cause: e });
    }
    await client.query('RESET lock_timeout');
    const pos = await readPosition(client, key);
    if (!pos) throw blockedError(`the monolith has no reverse stream position for ${key}`, { hint: 'the window was closed (cutover --finish) or never opened (cutover --reverse)' });
    return { id: 'monolith', client, sql: new Statements(client), replicaRole: await mayBypassTriggers(client), pos, open: false, applied: 0, statements: 0 };
  } catch (e) {
    await client.end().catch(() => undefined);
    throw e;
  }
}
