import { createHash } from 'node:crypto';
import { MOVE_LOCK_CLASS } from '../catalog/locks.js';
import type pg from 'pg';
import type { Config } from '../config/types.js';
import { connect, withClient, type Endpoint } from '../db/connect.js';
import { shardEndpoint } from '../db/endpoints.js';
import { blockedError } from '../errors.js';
import { mayBypassTriggers } from '../foreign-keys/after-copy-check.js';
import { copyBatch } from '../unit-copy/batch.js';
import type { Model } from '../tables/model.js';
import { moveTag, parseControl, sendControl } from '../stream/control.js';
import type { StreamNames } from '../stream/names.js';
import { clearShardState, prepareShardState, readPosition, writePosition } from '../stream/positions.js';
import { createSlot, dropStream, slotState } from '../stream/slot.js';
import { quoteIdent, quoteTable } from '../db/ident.js';
import { runStream } from '../stream/stream.js';
import { describeUnits } from '../fence/unit-fence.js';
import type { MovePoint } from './journal.js';
import { UnitApplier, UnitStreamError } from './unit-apply.js';
import { changedRowsDiffer, checkChangedRows, type ChangedCheck } from './unit-changed.js';

/**
 * The units one online move carries from shard `from` to shard `to` over ONE stream (`names`: a
 * slot and publication on `from`): one copy in the slot's snapshot, one follower, one fence for
 * the final catch-up. A single unit is a group of one.
 */
export interface MoveGroup {
  readonly from: string;
  readonly to: string;
  readonly units: readonly string[];
  readonly names: StreamNames;
}

/** What a move's copy and catch-up answer to: the caller's interrupt, and its hook at the points inside them. */
export interface MoveRun {
  signal?: AbortSignal;
  onPoint?: (point: MovePoint) => void;
}


/** Apply batches on the new shard: commit at a source transaction boundary after this many changes or this long. */
const BATCH_CHANGES = 2000;
const BATCH_MS = 200;

/**
 * How long the new shard may take, once the old shard is fenced, to apply the last changes and
 * prove the rows changed since the last proof: the gap was closed to under a second before fencing,
 * so a longer wait means the new shard is stuck, and the unit's writes must not stay refused for it
 * (the default of `--timeout`, SHARDCTL_MOVE_TIMEOUT).
 */
export const FENCED_WAIT_MS = 5_000;

/** The old shard is fenced only once a barrier crosses the stream within this long (the stream is that close to the source)... */
const NEAR_MS = 1000;
/** ...tried this many times (each round also proves the rows changed meanwhile); then the move refuses, nothing fenced. */
const NEAR_ROUNDS = 20;

/**
 * The slot and publication of one unit's online move, on its old shard. Named by the unit (hashed:
 * units are any text, slot names are [a-z0-9_]{1,63}). Also the key under which the new shard
 * records the unit's changed rows (follow_dirty), whichever group's stream carries it.
 */
export function moveStreamNames(unit: string): StreamNames {
  const name = `shardctl_move_${createHash('sha256').update(unit).digest('hex').slice(0, 24)}`;
  return { slot: name, publication: name };
}

/**
 * The stream of a group: a group of one is named by its unit as above; a larger one by its units.
 * The journal records the name with each unit's move, so a rerun finds what a killed run created.
 */
export function groupStreamNames(units: readonly string[]): StreamNames {
  if (units.length === 1) return moveStreamNames(units[0]!);
  const name = `shardctl_moves_${createHash('sha256').update(JSON.stringify([...units].sort())).digest('hex').slice(0, 24)}`;
  return { slot: name, publication: name };
}

/** Where the new shard records a unit's changed rows (follow_dirty's slot column): proven per unit (unit-changed.ts). */
export const dirtyKey = (unit: string): string => moveStreamNames(unit).slot;

/**
 * Copies the group's units to the new shard while writes go on: a publication on the sharded tables
 * and a logical slot on the old shard, the copy read in the slot's exported snapshot (so copy and
 * stream meet exactly at the slot's consistent point), each unit checksummed against that snapshot
 * before it commits; then the new shard's stream position is set to that point. A crash before the
 * caller journals this step is undone by the next run (slot dropped, copy deleted from the fenced target).
 */
export async function copyOnline(config: Config, model: Model, m: MoveGroup, { signal, onPoint }: MoveRun = {}): Promise<number> {
  const names = m.names;
  const from = shardEndpoint(config, m.from);
  const to = shardEndpoint(config, m.to);
  await withClient(from, async (c) => {
    await dropStream(c, names); // a copy cut short left a slot whose snapshot died with it
    // a partition's changes carry its root's name, the table the model (and the copy) knows
    const tables = model.sharded.map((t) => quoteTable(t.name)).join(', ');
    await c.query(`CREATE PUBLICATION ${quoteIdent(names.publication)} FOR TABLE ${tables} WITH (publish_via_partition_root = true)`);
  });
  const slot = await createSlot(from, names);
  onPoint?.('slot');
  try {
    const r = await copyBatch({ shard: m.to, units: [...m.units] }, { model, source: from, target: to, tables: model.sharded, verify: true, snapshot: slot.snapshot, signal });
    if (r.failed.length) throw new UnitStreamError(r.failed[0]!.reason);
    onPoint?.('copy');
    await withClient(to, async (c) => {
      await prepareShardState(c);
      await writePosition(c, names.slot, slot.consistentLsn);
    });
    return r.rows;
  } finally {
    await slot.conn.end().catch(() => undefined);
  }
}

export interface CatchUp {
  /** performance.now() when fencing the old shard began: the unit's write outage starts there */
  fencingAt: number;
  /** changes of the unit applied to the new shard by this run */
  changes: number;
  /** per unit: rows changed since the copy, proven equal on both shards while writes went on */
  provenRows: Map<string, number>;
  /** per unit: rows compared inside the fence, those changed since the last proof (never the whole unit) */
  checkedRows: Map<string, number>;
}

export interface CatchUpOptions extends MoveRun {
  /** fences the unit on the old shard (writers in flight waited for) */
  fence: () => Promise<void>;
  /** the bound on the wait once the old shard is fenced (final catch-up and proof), ms */
  fencedWaitMs?: number;
}

/**
 * Streams the group's changes from the old shard's slot to the new shard, proving the rows they
 * changed at each barrier (unit-changed.ts, unit by unit, while writes go on), until the stream is
 * near the source (a barrier crosses it within NEAR_MS; else the move refuses before fencing),
 * then calls `fence` (once, for every unit of the group), applies up to a last barrier emitted after the fence and compares the rows changed since
 * the last proof: from there the new shard holds every write the old one accepted, proven. All
 * that after the fence is bounded by `fencedWaitMs`. Resumes from the position the new shard
 * committed. Rejects (after rolling back the open batch) on any error or difference.
 */
export async function catchUp(config: Config, model: Model, m: MoveGroup, opts: CatchUpOptions): Promise<CatchUp> {
  const { fence, signal, onPoint } = opts;
  const fencedWaitMs = opts.fencedWaitMs ?? FENCED_WAIT_MS;
  const names = m.names;
  const who = describeGroup(m);
  const from = shardEndpoint(config, m.from);
  const to = shardEndpoint(config, m.to);
  const client = await connect(to, { applicationName: 'shardctl move' });
  let marker: pg.Client | undefined;
  try {
    await prepareShardState(client);
    // a killed predecessor may still have a COMMIT in flight here: its lock ends with it
    await client.query(`SET lock_timeout = '60s'`);
    await client.query('SELECT pg_advisory_lock($1, hashtext($2))', [MOVE_LOCK_CLASS, names.slot]);
    await client.query('RESET lock_timeout');
    const pos = await readPosition(client, names.slot);
    if (!pos) throw blockedError(`shard ${m.to} has no stream position for the move of ${who}`, { hint: 'run the same command again: the move starts over' });
    await releaseSlot(from, names);
    const applier = new UnitApplier(model, client, m.to, names.slot, new Set(m.units), dirtyKey, pos, await mayBypassTriggers(client));
    marker = await connect(from, { applicationName: 'shardctl move barrier' });

    // the stream stops with the caller's signal, or when fencing fails
    const stop = new AbortController();
    const streamSignal = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;
    let waiting: { tag: string; reached: () => void } | undefined;
    let stuck = false;
    let seen = false;
    let last = false;
    let flushedAt = Date.now();
    const provenRows = new Map(m.units.map((u) => [u, 0]));
    const stream = runStream(
      from,
      names,
      applier.pos,
      async (e, control) => {
        switch (e.kind) {
          case 'begin':
            applier.begin(e.commitLsn);
            seen = false;
            return;
          case 'insert':
            return applier.insert(model.table(e.table), e.row);
          case 'update':
            return applier.update(model.table(e.table), e.old, e.row);
          case 'delete':
            return applier.delete(model.table(e.table), e.old);
          case 'truncate':
            throw new UnitStreamError(`TRUNCATE of ${e.tables.join(', ')} on shard ${m.from} during the move`);
          case 'message':
            if (waiting) {
              const c = parseControl(e.prefix, e.content);
              if (c?.kind === 'tag' && c.tag === waiting.tag) seen = true;
            }
            return;
          case 'commit':
            if (seen || applier.pending >= BATCH_CHANGES || Date.now() - flushedAt >= BATCH_MS) {
              await applier.flush(e.endLsn);
              control.confirm(applier.pos);
              flushedAt = Date.now();
              onPoint?.('stream');
            }
            if (!seen) return;
            seen = false;
            if (last) return 'stop';
            // the new shard stands at this commit: prove what changed, while the old one takes writes
            for (const u of m.units) provenRows.set(u, provenRows.get(u)! + (await checkChangedRows(model, u, dirtyKey(u), marker!, client, { prune: true })).equal);
            onPoint?.('proving');
            const w = waiting!;
            waiting = undefined;
            w.reached();
            return;
          default:
            return;
        }
      },
      streamSignal,
    ).catch(async (e) => {
      await applier.rollback();
      throw e;
    });
    const ended = stream.then(() => {
      throw new Error('internal: the move stream ended before its barrier');
    });
    ended.catch(() => undefined);
    // a transactional message on the old shard: once its commit is applied, so is every earlier commit
    const barrier = async () => {
      const message = moveTag(names.slot);
      const reached = new Promise<void>((resolve) => (waiting = { tag: message.tag, reached: resolve }));
      await sendControl(marker!, message);
      return reached;
    };
    try {
      // close the gap (and prove what changed) while writes go on, so the fenced part is short
      let round = Infinity;
      for (let i = 0; i < NEAR_ROUNDS && round >= NEAR_MS; i++) {
        const t = Date.now();
        await Promise.race([barrier(), ended]);
        round = Date.now() - t;
      }
      if (round >= NEAR_MS) {
        throw blockedError(`${who}: the move's stream from shard ${m.from} stayed ${(round / 1000).toFixed(1)}s behind it after ${NEAR_ROUNDS} rounds, so shard ${m.from} was not fenced`, {
          hint: `the writes of ${who} outpace shard ${m.to}: run the same command again when they are lighter (check shard ${m.to} with shardctl health)`,
        });
      }
      const fencingAt = performance.now();
      await fence();
      last = true;
      let timer: NodeJS.Timeout | undefined;
      const bound = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          stuck = true;
          reject(blockedError(`${who}: shard ${m.to} did not apply and prove the last changes within ${fencedWaitMs / 1000}s of the fence on shard ${m.from}`, {
            hint: 'check shard ' + m.to + ' for locks or load (shardctl health), then run the same command again (perhaps with a longer --timeout)',
          }));
        }, fencedWaitMs);
      });
      // the handler stops the stream at the last barrier's commit; then both shards are quiet for the unit
      const finish = (async () => {
        await Promise.race([barrier(), stream]);
        await stream;
        const checks = new Map<string, ChangedCheck>();
        for (const u of m.units) checks.set(u, await checkChangedRows(model, u, dirtyKey(u), marker!, client));
        return checks;
      })();
      finish.catch(() => undefined);
      let checks: Awaited<typeof finish>;
      try {
        checks = await Promise.race([finish, bound]);
      } finally {
        clearTimeout(timer);
      }
      for (const [u, check] of checks) {
        if (check.problems.length) throw new UnitStreamError(changedRowsDiffer({ unit: u, from: m.from, to: m.to }, check));
      }
      onPoint?.('proved');
      return { fencingAt, changes: applier.applied, provenRows, checkedRows: new Map([...checks].map(([u, c]) => [u, c.rows])) };
    } catch (e) {
      stop.abort(e);
      // a statement stuck on either shard holds the handler or the proof: cancel it so the stream can end
      if (stuck) {
        const pid = (x: pg.Client) => (x as unknown as { processID: number }).processID;
        await withClient(to, (c) => c.query('SELECT pg_cancel_backend($1)', [pid(client)])).catch(() => undefined);
        await withClient(from, (c) => c.query('SELECT pg_cancel_backend($1)', [pid(marker!)])).catch(() => undefined);
      }
      await stream.catch(() => undefined); // settles once the handler in progress has finished
      throw e;
    }
  } finally {
    await Promise.all([client.end().catch(() => undefined), marker?.end().catch(() => undefined)]);
  }
}

/** A walsender of a killed run may still hold the slot: end it (the run lock says no live run uses it). */
async function releaseSlot(from: Endpoint, names: StreamNames): Promise<void> {
  await withClient(from, async (c) => {
    const s = await slotState(c, names);
    if (!s) throw blockedError(`the replication slot ${names.slot} is gone from the old shard, so the move cannot catch up`, { hint: 'run the same command again: the move starts over' });
    if (!s.activePid) return;
    await c.query('SELECT pg_terminate_backend($1)', [s.activePid]);
    for (let i = 0; i < 100 && (await slotState(c, names))?.active; i++) await new Promise((r) => setTimeout(r, 50));
  });
}

/** The group's slot and publication dropped on the old shard, its stream position and its units' records of changed rows on the new one. Idempotent. */
export async function dropMoveStream(config: Config, m: MoveGroup): Promise<void> {
  await withClient(shardEndpoint(config, m.from), (c) => dropStream(c, m.names));
  await withClient(shardEndpoint(config, m.to), async (c) => {
    for (const key of new Set([m.names.slot, ...m.units.map(dirtyKey)])) await clearShardState(c, key);
  });
}

/** `unit 42`, or `3 units (1, 2, 3)`, for messages. */
export const describeGroup = (m: Pick<MoveGroup, 'units'>): string => describeUnits(m.units);
