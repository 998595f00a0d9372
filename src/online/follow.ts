import { withRun, type RunScope } from '../catalog/run.js';
import { FOLLOW_LOCK_CLASS } from '../catalog/locks.js';
import type { Config } from '../config/types.js';
import { connect, withClient, type Endpoint } from '../db/connect.js';
import { blockedError, usageError, UserError } from '../errors.js';
import { migrate, type MigrateResult } from '../migrate/index.js';
import type { EventSink as MigrateEventSink } from '../migrate/events.js';
import { mayBypassTriggers } from '../foreign-keys/after-copy-check.js';
import { shardEndpoint, sourceEndpoint } from '../db/endpoints.js';
import { redactText } from '../redact.js';
import { pgFailure } from '../db/pg-error.js';
import { topologyRouter } from '../routing/router.js';
import { loadModel, type Model } from '../tables/model.js';
import { Applier, type ShardSession } from '../stream/apply.js';
import type { FollowEventSink } from '../stream/events.js';
import { lsnText } from '../db/lsn.js';
import { MIGRATION_STREAM, type StreamNames } from '../stream/names.js';
import { clearShardState, prepareShardState, readPosition, writePosition } from '../stream/positions.js';
import { checkSourceForFollow } from '../stream/preflight.js';
import { RouteError, rowRouter } from '../stream/route.js';
import { sourceShapes } from '../stream/shape.js';
import { checkPublication, createSlot, dropStream, ensurePublication, slotState } from '../stream/slot.js';
import { readOnline, setOnline, startCopying } from '../catalog/online.js';
import { Statements } from '../stream/statements.js';
import { dropGoneUnits } from './gone-units.js';
import { startProver, type Prover } from './prover.js';
import { FOLLOWER_SESSION_SQL, recordForeignWrites } from '../stream/foreign-writes.js';
import { applyStream, startHeartbeat } from '../stream/follower.js';
import { assertHeartbeat, readRelFiles, relFiles, writeRelFiles, type RelFiles } from '../stream/rewrite.js';
import type pg from 'pg';

export interface FollowOptions {
  /** copy streams in flight during the initial copy (as migrate --concurrency) */
  concurrency?: number;
  /** rows of the keyed tables per copy batch (as migrate --batch-rows) */
  batchRows?: number;
  /** how often the follower marks the source's stream (lag, positions when idle); default 1000 ms */
  heartbeatMs?: number;
  /** between copy batches and between applied batches (src/throttle/) */
  throttle?: { wait(): Promise<void> };
  signal?: AbortSignal;
  onEvent?: (e: Parameters<MigrateEventSink>[0] | Parameters<FollowEventSink>[0]) => void;
}

export interface FollowResult {
  /** why the follower stopped: the cutover finished, or it was already done */
  stopped: 'cutover' | 'already-cut-over';
  /** the initial copy, when this run made it */
  copy?: Pick<MigrateResult, 'units' | 'rows' | 'bytes' | 'seconds'>;
  /** statements applied to the shards by this run */
  applied: number;
  appliedLsn: string;
  seconds: number;
}


/**
 * Apply batches: commit at a source transaction boundary after this many changes or this long. Each
 * commit costs every shard a few round trips and a WAL flush while applying waits, so a second:
 * the barrier and stop messages commit at once (cutover does not wait for it), and a crash replays
 * at most this much.
 */
const BATCH_CHANGES = 2000;
const BATCH_MS = 1000;

/**
 * `migrate --follow`: an online migration. Creates a publication and a logical replication slot
 * (pgoutput) on the source, copies every unit from the slot's exported snapshot (so the copy and the
 * stream meet exactly at the slot's consistent point), then applies the source's changes to the
 * shards until `cutover` tells it to stop. Run it again after any crash: a copy that did not finish
 * starts over with a new slot; a follower resumes from the position its shards committed.
 *
 * @example await follow(loadConfig('shardctl.yaml'), { onEvent: console.error });
 */
export async function follow(config: Config, opts: FollowOptions = {}): Promise<FollowResult> {
  const started = performance.now();
  const names = MIGRATION_STREAM;
  const source = sourceEndpoint(config);
  const spec = { command: 'migrate --follow', args: { follow: true }, lock: 'run' as const, outcome: (r: FollowResult) => ({ status: 'ok' as const, summary: r }) };
  return withRun(config.catalog, spec, async (scope) => {
    const catalog = scope.catalog;
    const model = await withClient(source, (c) => loadModel(config, c));
    // the follower places a streamed row on one shard; a row with several routes needs every one
    const multi = model.sharded.filter((t) => t.config.routes).map((t) => t.name);
    if (multi.length) {
      throw usageError(`${config.file}: ${multi.join(', ')} ha${multi.length === 1 ? 's' : 've'} several routes, which migrate --follow does not stream yet`, 'migrate offline (shardctl migrate, writes stopped), or give the table one route while following');
    }
    const tables = model.tables.map((t) => t.name);
    const state = await readOnline(catalog.client, names);
    if (state?.state === 'cut-over') return { stopped: 'already-cut-over', applied: 0, appliedLsn: '0/0', seconds: 0 };
    const via = new Set(model.sharded.filter((t) => t.config.route.kind === 'via').map((t) => t.name));
    await withClient(source, (c) => checkSourceForFollow(c, tables, names, 'source', via));
    const slot = await withClient(source, (c) => slotState(c, names));
    let copy: FollowResult['copy'];
    if (!state || state.state === 'copying') copy = await initialCopy(config, model, scope, names, opts);
    else if (!slot) {
      throw blockedError(`the replication slot ${names.slot} is gone from the source, so changes since the follower last ran are lost to it`, {
        hint: 'start over with a fresh copy: shardctl migrate --abandon, then shardctl migrate --follow',
      });
    }
    if (!copy) await withClient(source, (c) => checkPublication(c, names, tables));
    const r = await streamChanges(config, model, names, opts);
    return { stopped: 'cutover', copy, ...r, seconds: (performance.now() - started) / 1000 };
  });
}

/** A new slot, its snapshot, the copy read in it, then every shard's position set to the slot's start. */
async function initialCopy(config: Config, model: Model, scope: RunScope, names: StreamNames, opts: FollowOptions): Promise<FollowResult['copy']> {
  const source = sourceEndpoint(config);
  await withClient(source, async (c) => {
    await dropStream(c, names); // a copy cut short left a slot whose snapshot died with it
    await ensurePublication(c, names, model.tables.map((t) => t.name));
  });
  // before the slot: a rewrite after this read (even during the copy) shows as a changed relfilenode
  const files = await withClient(source, (c) => relFiles(c, model.tables.map((t) => t.name)));
  const slot = await createSlot(source, names);
  let copied: MigrateResult;
  try {
    await startCopying(scope.catalog.client, names, slot.consistentLsn, scope.run!.id);
    copied = await migrate(config, {
      snapshot: slot.snapshot,
      resync: true,
      held: scope,
      concurrency: opts.concurrency,
      batchRows: opts.batchRows,
      throttle: opts.throttle,
      signal: opts.signal,
      onEvent: opts.onEvent,
    });
  } finally {
    await slot.conn.end().catch(() => undefined);
  }
  if (copied.elsewhere.length) {
    throw blockedError(`${copied.elsewhere.length} unit(s) are placed on another shard than they route to (e.g. ${copied.elsewhere[0]!.unit} on ${copied.elsewhere[0]!.placedOn}); an online migration copies every unit to its route`, {
      hint: 'run shardctl rebalance --apply first, then migrate --follow again',
    });
  }
  if (!copied.ok) {
    throw blockedError(`the initial copy did not complete (${copied.failures.length} unit(s) differ, ${copied.errors.length} batch(es) failed); nothing is streamed yet`, {
      details: [...copied.failures.map((f) => `unit ${f.unit} on ${f.shard}: ${f.reason}`), ...copied.errors.map((e) => `${e.shard}: ${e.error}`)],
      hint: 'run migrate --follow again: the copy starts over from a new slot',
    });
  }
  await dropGoneUnits(config, model, scope.catalog.client, copied.gone.map((g) => g.unit));
  await Promise.all(
    config.shards.map((s) =>
      withClient(shardEndpoint(config, s.id), async (c) => {
        await prepareShardState(c);
        await clearShardState(c, names.slot); // a fresh copy is the new proven state: no stash, nothing changed since
        await writePosition(c, names.slot, slot.consistentLsn);
        await writeRelFiles(c, names.slot, files);
      }),
    ),
  );
  await setOnline(scope.catalog.client, names, 'following');
  return { units: copied.units, rows: copied.rows, bytes: copied.bytes, seconds: copied.seconds };
}

/** The follower proper: applies the slot's changes until a stop message (cutover) or an error. */
async function streamChanges(config: Config, model: Model, names: StreamNames, opts: FollowOptions): Promise<Pick<FollowResult, 'applied' | 'appliedLsn'>> {
  const emit = opts.onEvent ?? (() => undefined);
  const source = sourceEndpoint(config);
  const sessions: ShardSession[] = [];
  let heart: { stop(): Promise<void> } | undefined;
  let prover: Prover | undefined;
  try {
    for (const s of config.shards) sessions.push(await openSession(shardEndpoint(config, s.id), s.id, names));
    await refuseGap(source, names, sessions);
    // from here on a write on a shard that is not the follower's is recorded (cutover re-proves it)
    for (const s of sessions) await recordForeignWrites(s.client, names.slot, model.tables);
    const recorded = await withClient(source, (c) => copyRelFiles(c, sessions, model, names, emit));
    const router = topologyRouter(config);
    const applier = new Applier(model, sessions, names.slot, (parentShard) => rowRouter(model, router, parentShard));
    const shapes = await withClient(source, (c) => sourceShapes(c, model.tables.map((t) => t.name)));
    const start = sessions.reduce((m, s) => (s.pos < m ? s.pos : m), sessions[0]!.pos);

    let sourceChanges = 0;
    let appliedTime: number | undefined;
    // progress at every heartbeat, which also measures the lag
    let lastApplied = 0;
    let lastBeat = Date.now();
    const perShard = new Map(sessions.map((s) => [s.id, 0]));
    heart = await startHeartbeat(source, 'shardctl follow heartbeat', opts.heartbeatMs ?? 1000, (now) => {
      const secs = Math.max(0.001, (Date.now() - lastBeat) / 1000);
      lastBeat = Date.now();
      const applied = sessions.reduce((n, s) => n + s.applied, 0);
      emit({
        type: 'follow-progress',
        appliedLsn: lsnText(applier.confirmed),
        lagBytes: Math.max(0, Number(now - applier.confirmed)),
        lagSeconds: appliedTime === undefined ? null : Math.max(0, (Date.now() - appliedTime) / 1000),
        changesPerSecond: Math.round((applied - lastApplied) / secs),
        sourceChanges,
        heldChanges: applier.heldHighWater(),
        provenRows: prover?.proven() ?? 0,
        shards: sessions.map((s) => {
          const d = s.applied - perShard.get(s.id)!;
          perShard.set(s.id, s.applied);
          return { shard: s.id, changes: s.applied, changesPerSecond: Math.round(d / secs), statements: s.statements };
        }),
      });
      lastApplied = applied;
    }, (e) => emit({ type: 'follow-warning', message: `heartbeat on the source failed: ${redactText(e.message)}` }), model.tables.map((t) => t.name));
    // proves changed rows while following, so cutover's fence checks only the last ones (prover.ts).
    // Not behind the throttle: a check it started would report 'throttled' while the apply still runs.
    prover = await startProver(config, model, names.slot, { onWarning: (m) => emit({ type: 'follow-warning', message: redactText(m) }) });

    try {
      await applyStream(source, names, start, model, applier, {
        batchChanges: BATCH_CHANGES,
        batchMs: BATCH_MS,
        shapes,
        onChange: () => sourceChanges++,
        onFlush: (at) => (appliedTime = at.getTime()),
        onStart: () => emit({ type: 'follow-start', slot: names.slot, from: lsnText(start) }),
        onHeartbeat: (relFiles) => assertHeartbeat(recorded, relFiles),
        throttle: opts.throttle,
        signal: opts.signal,
      });
    } catch (e) {
      const reason = opts.signal?.aborted ? 'interrupted' : 'error';
      emit({ type: 'follow-stop', reason, appliedLsn: lsnText(applier.confirmed), message: redactText((e as Error).message) });
      if (opts.signal?.aborted) {
        throw new UserError('interrupted', `interrupted: the shards hold the source's changes up to ${lsnText(applier.confirmed)}`, {
          hint: 'run shardctl migrate --follow again to continue from there',
        });
      }
      const stopped = 'The follower stopped; the slot is kept';
      if (e instanceof RouteError) throw blockedError(`${e.message}. ${stopped}`, { hint: 'fix the row on the source, then run migrate --follow again' });
      const f = pgFailure(e, 'source');
      if (f instanceof UserError) {
        throw new UserError(f.kind, `${f.message}. ${stopped}`, { details: [...f.details], hint: f.hint ?? 'run shardctl migrate --follow again to resume from what every shard committed', cause: e });
      }
      throw f; // a bug: reported as one
    }
    emit({ type: 'follow-stop', reason: 'cutover', appliedLsn: lsnText(applier.confirmed) });
    return { applied: sessions.reduce((n, s) => n + s.applied, 0), appliedLsn: lsnText(applier.confirmed) };
  } finally {
    await heart?.stop();
    await prover?.stop();
    await Promise.all(sessions.map((s) => s.client.end().catch(() => undefined)));
  }
}

/**
 * The slot sends nothing before its confirmed position, and the follower confirms only what every
 * shard has committed: a shard whose position is behind it lost commits it had (a failover to a
 * replica that had not received the follower's last transactions, or a restore). Those changes,
 * and the record of the rows they changed (cutover's proof), will never come again: refused.
 */
async function refuseGap(source: Endpoint, names: StreamNames, sessions: readonly ShardSession[]): Promise<void> {
  const confirmed = (await withClient(source, (c) => slotState(c, names)))?.confirmedLsn;
  if (!confirmed) return; // no slot: the stream itself says so when it starts
  const behind = sessions.filter((s) => s.pos < confirmed);
  if (!behind.length) return;
  const which = behind.map((s) => `shard ${s.id} at ${lsnText(s.pos)}`).join(', ');
  throw blockedError(`${which}: behind the position the slot ${names.slot} has confirmed (${lsnText(confirmed)}), so the source's changes in between are lost to the follower (was the shard failed over to a replica that lacked its last commits, or restored?)`, {
    hint: `copy again from a fresh slot: shardctl migrate --abandon, then shardctl migrate --follow (migrate --resync --units is refused while the window is open and would not bring the changes back)`,
  });
}

/**
 * The relfilenodes recorded with the copy (rewrite.ts). A window opened by an older shardctl has
 * none: they are recorded now, and a rewrite before this moment cannot be detected (said once).
 */
async function copyRelFiles(source: pg.ClientBase, sessions: readonly ShardSession[], model: Model, names: StreamNames, emit: NonNullable<FollowOptions['onEvent']>): Promise<RelFiles> {
  const recorded = await readRelFiles(sessions[0]!.client, names.slot);
  if (recorded) return recorded;
  const files = await relFiles(source, model.tables.map((t) => t.name));
  for (const s of sessions) await writeRelFiles(s.client, names.slot, files);
  emit({ type: 'follow-warning', message: 'this online migration was opened by an older shardctl: a table rewrite (ALTER TABLE … TYPE … USING, VACUUM FULL) before now cannot be detected; verify after cutover' });
  return files;
}

async function openSession(ep: Endpoint, id: string, names: StreamNames): Promise<ShardSession> {
  const client = await connect(ep, { applicationName: 'shardctl follow' });
  try {
    await prepareShardState(client);
    await client.query(FOLLOWER_SESSION_SQL);
    // A follower killed a moment ago may still have a COMMIT in flight on this shard (its backend
    // finishes the statement before it notices the client is gone). Each follower holds this lock for
    // its life, so the position read below is the one that old transaction left, not an older one.
    await client.query(`SET lock_timeout = '60s'`);
    try {
      await client.query('SELECT pg_advisory_lock($1, hashtext($2))', [FOLLOW_LOCK_CLASS, names.slot]);
    } catch (e) {
      throw blockedError(`shard ${id}: another follower of ${names.slot} is still applying changes there`, { hint: 'stop it, then run migrate --follow again', cause: e });
    }
    await client.query('RESET lock_timeout');
    const pos = await readPosition(client, names.slot);
    if (!pos) {
      throw blockedError(`shard ${id} has no stream position for ${names.slot}: it was not part of the initial copy`, {
        hint: 'start over with a fresh copy: shardctl migrate --abandon, then shardctl migrate --follow',
      });
    }
    return { id, client, sql: new Statements(client), replicaRole: await mayBypassTriggers(client), pos, open: false, applied: 0, statements: 0 };
  } catch (e) {
    await client.end().catch(() => undefined);
    throw e;
  }
}
