import pLimit from 'p-limit';
import type pg from 'pg';
import type { Config } from '../config/types.js';
import { withClient, type Endpoint } from '../db/connect.js';
import { copyBatch } from '../unit-copy/batch.js';
import { shardEndpoint } from '../db/endpoints.js';
import type { Model } from '../tables/model.js';
import { deleteUnit, unitRowsOn, type HomesOf } from './unit-rows.js';
import { catalogHomes, onShard } from './homes.js';
import { scanServer } from '../unit-copy/scan.js';
import { isCatalogLost } from '../catalog/catalog.js';
import { isUserError } from '../errors.js';
import { failureText } from '../db/pg-error.js';
import { fenceUnits, unfenceUnits, type FenceRole } from '../fence/unit-fence.js';
import { routeHere } from '../fence/route-guard.js';
import { finishMove, flipPlacement, isOfflineStep, isOnlineStep, journalStep, ONLINE_STEPS, STEPS, type MovePoint, type MovePointHook, type MoveRow, type Step } from './journal.js';
import { catchUp, copyOnline, dropMoveStream, moveStreamNames } from './online.js';
import { changedRowsDiffer, checkChangedRows } from './unit-changed.js';
import { readPosition } from '../stream/positions.js';
import { topologyRouter } from '../routing/router.js';

export interface MoveContext {
  readonly config: Config;
  readonly model: Model;
  readonly catalog: pg.ClientBase;
  /** serialises catalog statements: one catalog connection, many moves */
  readonly journal: <T>(fn: () => Promise<T>) => Promise<T>;
  readonly runId: number;
  readonly signal?: AbortSignal;
  /** online: the bound on every wait once the old shard is fenced, ms (default FENCED_WAIT_MS) */
  readonly fencedWaitMs?: number;
  onStep?(move: MoveRow, step: Step): void;
  /** at each point of the move (journal.ts): tests kill the process there */
  readonly onMovePoint?: MovePointHook;
}

export type MoveOutcome =
  | { ok: true; rows: number; online: boolean; outageSeconds?: number; catchUpChanges?: number; provenRows?: number; checkedRows?: number }
  /** blocked: the move could not proceed (a bound missed, a lock held; exit 3), else it failed (exit 1) */
  | { ok: false; reason: string; blocked?: boolean };

type Unit = { unit: string; from: string; to: string };

/**
 * Moves one unit from shard `from` to shard `to`, resuming after the last journaled step:
 *   0 started   the move is journaled (before any fence, so no fence is ever unknown to the journal)
 *   1 fenced    writes to the unit refused on both shards (after in-flight writers finish), and the
 *               target proven to hold none of the unit's rows (an application router on the new
 *               topology may have written some: they are never deleted silently)
 *   2 copied    delete-then-COPY into `to` in one transaction, checksummed against `from` before commit
 *   3 verified  counts and checksums compared again, both sides committed
 *   4 flipped   the catalog placement says `to`
 *   5 deleted   the unit's rows removed from `from` (one transaction, children first)
 *   6 lifted    the fence lifted on `to`; `from` keeps refusing writes (a tombstone for stale routers)
 * Every step is idempotent, so a crash anywhere is completed by running the same command again.
 * Any failure or interruption settles the unit (see `settle`): it ends writable on exactly its
 * placed shard, and the reason says so. The unit is never absent from every shard.
 */
export async function moveUnit(ctx: MoveContext, move: MoveRow | (Unit & { step?: undefined }), online: boolean): Promise<MoveOutcome> {
  // a journaled move goes on as it began; a step both lists share completes either way
  const onList = move.step ? (isOnlineStep(move.step) ? true : isOfflineStep(move.step) ? false : online) : online;
  return onList ? moveOnline(ctx, move) : moveOffline(ctx, move);
}

/** The steps of one move: where it stands, and journaling the next one. */
function progress(ctx: MoveContext, m: Unit, list: readonly Step[], at: Step | undefined) {
  const p = {
    last: at ? list.indexOf(at) : -1,
    pending: (s: Step) => p.last < list.indexOf(s),
    passed: (s: Step) => p.last >= list.indexOf(s),
    step: async (s: Step) => {
      await ctx.journal(() => journalStep(ctx.catalog, ctx.runId, m, s));
      p.last = list.indexOf(s);
      ctx.onStep?.({ ...m, step: s }, s);
      ctx.onMovePoint?.(s, m);
    },
    flip: async () => {
      const wanted = topologyRouter(ctx.config).shardForUnit(m.unit); // the topology this run recorded
      await ctx.journal(() => flipPlacement(ctx.catalog, ctx.runId, m, wanted));
      p.last = list.indexOf('flipped');
      ctx.onStep?.({ ...m, step: 'flipped' }, 'flipped');
      ctx.onMovePoint?.('flipped', m);
    },
  };
  return p;
}

/** The steps both modes share once the new shard holds the unit: compare it on both shards, then flip the placement. */
async function verifyAndFlip(ctx: MoveContext, p: ReturnType<typeof progress>, m: Unit, from: Endpoint, to: Endpoint): Promise<void> {
  if (p.pending('verified')) {
    ctx.signal?.throwIfAborted();
    const differs = await compareUnit(ctx, m.unit, from, to);
    if (differs) throw new MoveRefused(differs);
    await p.step('verified');
  }
  if (p.pending('flipped')) {
    ctx.signal?.throwIfAborted();
    await p.flip();
  }
}

async function moveOffline(ctx: MoveContext, move: MoveRow | (Unit & { step?: undefined })): Promise<MoveOutcome> {
  const m: Unit = { unit: move.unit, from: move.from, to: move.to };
  const from = shardEndpoint(ctx.config, m.from);
  const to = shardEndpoint(ctx.config, m.to);
  const p = progress(ctx, m, STEPS, move.step);
  const { pending, step } = p;
  let rows = 0;
  const guard = () => ctx.signal?.throwIfAborted();
  // tables with several routes: a row stays on a shard while another of its units lives there
  const homes = catalogHomes(ctx.config, ctx.catalog, ctx.journal);
  const fencingAt = pending('fenced') ? performance.now() : undefined;

  try {
    if (pending('started')) {
      guard();
      await step('started');
    }
    if (pending('fenced')) {
      guard();
      await setFence(ctx, from, m, 'source');
      await fenceTarget(ctx, to, m, homes);
      await step('fenced');
    }
    if (pending('copied')) {
      guard();
      const r = await copyBatch({ shard: m.to, units: [m.unit] }, {
        model: ctx.model, source: from, target: to, tables: ctx.model.sharded, verify: true, signal: ctx.signal,
      });
      if (r.failed.length) throw new MoveRefused(r.failed[0]!.reason);
      rows = r.rows;
      await step('copied');
    }
    await verifyAndFlip(ctx, p, m, from, to);
    if (pending('deleted')) {
      await deleteUnit(ctx.model, from, m.unit, onShard(m.from, homes));
      await step('deleted');
    }
    let outageSeconds: number | undefined;
    if (pending('lifted')) {
      outageSeconds = await reopen(ctx, m, from, to, fencingAt);
      await step('lifted');
    }
    await ctx.journal(() => finishMove(ctx.catalog, m.unit));
    return { ok: true, rows, online: false, outageSeconds };
  } catch (e) {
    if (isCatalogLost(e)) throw e; // another run may own the fleet now: touch nothing
    const reason = failureText(e, `shard ${m.from} → ${m.to}`);
    return { ok: false, reason: `${reason}; ${await settle(ctx, m, p.passed('flipped'), p.passed('fenced'))}`, blocked: isBlocked(e) };
  }
}

/**
 * Moves one unit ONLINE (online.ts), resuming after the last journaled step (ONLINE_STEPS):
 *   0 started        journaled before anything is created or fenced
 *   1 target-fenced  writes to the unit refused on `to` only, which is proven to hold none of its rows
 *   2 streaming      slot + publication on `from`; the unit copied from the slot's snapshot while
 *                    its writes go on there; `to` knows the stream position the copy stands at
 *   3 caught-up      the unit's changes applied to `to`, the rows they changed proven equal on
 *                    both shards as it goes (unit-changed.ts); then `from` fenced (the write
 *                    outage starts), the changes up to a barrier after the fence applied and the
 *                    rows changed since the last proof compared: `to` holds every write `from`
 *                    accepted, proven. All waits after the fence are bounded (`fencedWaitMs`): a
 *                    missed bound lifts the fence on `from` first and undoes the move.
 *   4 verified       journaled right after (a rerun resuming at caught-up compares the recorded
 *                    rows again, or the whole unit if the record is gone)
 *   5 flipped        the catalog placement says `to`
 *   6 opened         `from` keeps a tombstone fence, `to` lifts its fence: the outage ends; then
 *                    the slot, the publication and the record of changed rows are dropped
 *   7 purged         the unit's old rows deleted from `from`
 * A crash before `streaming` is undone by the next run (which plans the move afresh); from
 * `streaming` on, the next run resumes from the position `to` committed.
 */
async function moveOnline(ctx: MoveContext, move: MoveRow | (Unit & { step?: undefined })): Promise<MoveOutcome> {
  const m: Unit = { unit: move.unit, from: move.from, to: move.to };
  const from = shardEndpoint(ctx.config, m.from);
  const to = shardEndpoint(ctx.config, m.to);
  const p = progress(ctx, m, ONLINE_STEPS, move.step);
  const { pending, step } = p;
  let rows = 0;
  let fencingAt: number | undefined;
  let catchUpChanges: number | undefined;
  let proof: { provenRows: number; checkedRows: number } | undefined;
  const guard = () => ctx.signal?.throwIfAborted();
  const homes = catalogHomes(ctx.config, ctx.catalog, ctx.journal);
  const run = { signal: ctx.signal, onPoint: (point: MovePoint) => ctx.onMovePoint?.(point, m) };
  try {
    if (pending('started')) {
      guard();
      await step('started');
    }
    if (pending('target-fenced')) {
      guard();
      await fenceTarget(ctx, to, m, homes);
      await step('target-fenced');
    }
    if (pending('streaming')) {
      guard();
      rows = await copyOnline(ctx.config, ctx.model, m, run);
      await step('streaming');
    }
    if (pending('caught-up')) {
      guard();
      const r = await catchUp(ctx.config, ctx.model, m, {
        fence: async () => {
          await setFence(ctx, from, m, 'source');
          run.onPoint('source-fencing');
        },
        signal: ctx.signal,
        onPoint: run.onPoint,
        fencedWaitMs: ctx.fencedWaitMs,
      });
      fencingAt = r.fencingAt;
      catchUpChanges = r.changes;
      proof = { provenRows: r.provenRows, checkedRows: r.checkedRows };
      await step('caught-up');
      await step('verified'); // catchUp proved it, inside the fence
    }
    if (pending('verified')) {
      guard();
      const differs = await verifyResumed(ctx, m, from, to);
      if (differs) throw new MoveRefused(differs);
      await step('verified');
    }
    await verifyAndFlip(ctx, p, m, from, to);
    let outageSeconds: number | undefined;
    if (pending('opened')) {
      outageSeconds = await reopen(ctx, m, from, to, fencingAt);
      await step('opened');
    }
    // after the outage (dropping a slot waits for its sender to end); also when resuming: a crash may have come before it
    await dropMoveStream(ctx.config, m);
    if (pending('purged')) {
      await deleteUnit(ctx.model, from, m.unit, onShard(m.from, homes));
      await step('purged');
    }
    await ctx.journal(() => finishMove(ctx.catalog, m.unit));
    return { ok: true, rows, online: true, outageSeconds, catchUpChanges, ...proof };
  } catch (e) {
    if (isCatalogLost(e)) throw e; // another run may own the fleet now: touch nothing
    const reason = failureText(e, `shard ${m.from} → ${m.to}`);
    // before `caught-up` is journaled a rerun fences the old shard again before its last catch-up, so
    // the old shard may take writes again first, before a cleanup that waits on a stuck new shard
    return { ok: false, reason: `${reason}; ${await settle(ctx, m, p.passed('flipped'), p.passed('target-fenced'), !p.passed('caught-up'))}`, blocked: isBlocked(e) };
  }
}

/**
 * A rerun resuming an online move at `caught-up` (the old shard still fenced): the rows the move
 * recorded as changed since its last proof are compared again (unit-changed.ts); if the record is
 * gone with the stream position, the whole unit is. Undefined when equal.
 */
async function verifyResumed(ctx: MoveContext, m: Unit, from: Endpoint, to: Endpoint): Promise<string | undefined> {
  const slot = moveStreamNames(m.unit).slot;
  const check = await withClient(to, async (t) => {
    if (!(await readPosition(t, slot).catch(() => undefined))) return undefined;
    return withClient(from, (f) => checkChangedRows(ctx.model, m.unit, slot, f, t));
  });
  if (!check) return compareUnit(ctx, m.unit, from, to);
  return check.problems.length ? changedRowsDiffer(m, check) : undefined;
}

/** A move that cannot go on; its message is the reason shown to the user. */
class MoveRefused extends Error {}

const isBlocked = (e: unknown): boolean => isUserError(e) && e.kind === 'blocked';

/**
 * Leaves a unit whose move stopped writable on exactly its placed shard, and says so:
 *  - not flipped: the move is undone (the copy, if any, deleted from the target; both fences and
 *    the journal row removed): the unit stays on `from`;
 *  - flipped: the unit is placed on `to`, whose fence is lifted; `from` keeps its fence and the
 *    journal row, so the next run deletes the old copy there.
 * If the cleanup fails too, the journal row stays and the next run resumes the move.
 */
async function settle(ctx: MoveContext, m: Unit, flipped: boolean, fenced: boolean, fromFirst = false): Promise<string> {
  try {
    if (flipped) {
      await withClient(shardEndpoint(ctx.config, m.to), (c) => openHere(c, m));
      return `unit ${m.unit} is placed on shard ${m.to} and writable there; its old rows on shard ${m.from} are still fenced there: run the same command again to delete them`;
    }
    await undoMove(ctx, m, fenced, fromFirst);
    return `the move was undone: unit ${m.unit} stays on shard ${m.from}, writable there`;
  } catch (e) {
    const why = failureText(e, 'cleanup');
    return `unit ${m.unit} is placed on shard ${flipped ? m.to : m.from} but may still be fenced (cleaning up failed: ${why}): run the same command again`;
  }
}

/**
 * Undoes a move that has not flipped: fences lifted, journal row gone, and with `fenced` (the target
 * was fenced and proven free of the unit's rows, so whatever it holds of the unit now is shardctl's
 * copy) the unit's rows removed from the target first.
 */
export async function undoMove(ctx: Pick<MoveContext, 'config' | 'model' | 'catalog' | 'journal'>, m: Unit, fenced: boolean, fromFirst = false): Promise<void> {
  const to = shardEndpoint(ctx.config, m.to);
  const unfenceFrom = () => withClient(shardEndpoint(ctx.config, m.from), (c) => unfenceUnits(c, [m.unit]));
  // `fromFirst`: the unit's placed shard takes writes again before a cleanup that may wait on a
  // stuck new shard (the target keeps its fence until its copy is gone); only where the journal
  // makes a rerun fence the old shard again before it trusts the copy
  if (fromFirst) await unfenceFrom();
  await dropMoveStream(ctx.config, m); // an online move's slot and publication (none for an offline one)
  if (fenced) await deleteUnit(ctx.model, to, m.unit, onShard(m.to, catalogHomes(ctx.config, ctx.catalog, ctx.journal)));
  await withClient(to, (c) => unfenceUnits(c, [m.unit]));
  if (!fromFirst) await unfenceFrom();
  await ctx.journal(() => finishMove(ctx.catalog, m.unit));
}

/**
 * Fences the unit on the target, which must then hold none of its rows: `pin`, `mapping set` and
 * `add-shard` publish the new topology before data moves, and rows an application router wrote
 * there meanwhile are the application's, never a stale copy to delete.
 */
async function fenceTarget(ctx: MoveContext, to: Endpoint, m: Unit, homes: HomesOf): Promise<void> {
  await setFence(ctx, to, m, 'target');
  ctx.onMovePoint?.('fencing', m);
  const found = await unitRowsOn(ctx.model, to, m.unit, onShard(m.to, homes));
  if (found) throw new MoveRefused(`shard ${m.to} already holds rows of unit ${m.unit} (${found}), written there before the move (an application router on the new topology?); shardctl does not delete them: move them to shard ${m.from} or delete them, then run again`);
}

/**
 * The unit's write outage ends, in this order: `from` keeps a tombstone fence (for stale routers),
 * then `to` lifts its fence. Returns the outage in seconds when this run began it (`fencingAt`).
 */
async function reopen(ctx: MoveContext, m: Unit, from: Endpoint, to: Endpoint, fencingAt: number | undefined): Promise<number | undefined> {
  await setFence(ctx, from, m, 'moved');
  await withClient(to, (c) => openHere(c, m));
  return fencingAt === undefined ? undefined : (performance.now() - fencingAt) / 1000;
}

/** The flipped unit's new shard routes it there (route-guard.ts), then lifts its fence. */
async function openHere(c: pg.ClientBase, m: Unit): Promise<void> {
  await routeHere(c, m.unit, m.to);
  await unfenceUnits(c, [m.unit]);
}

const setFence = (ctx: MoveContext, e: Endpoint, m: Unit, role: FenceRole) =>
  withClient(e, (c) => fenceUnits(c, e, ctx.config, [{ ...m, role }]));

/** Counts and checksums of one unit on both shards, after both committed; undefined when equal. */
async function compareUnit(ctx: MoveContext, unit: string, from: Endpoint, to: Endpoint): Promise<string | undefined> {
  const limit = pLimit(2);
  const plan = { model: ctx.model, tables: ctx.model.sharded, units: [unit], limit, onEvent: () => undefined };
  const [a, b] = await Promise.all([scanServer('from', from, plan), scanServer('to', to, plan)]);
  for (const s of [a, b]) if (s.error) throw new Error(s.error);
  for (const t of ctx.model.sharded) {
    const x = a.tables.get(t.name)?.units.get(unit);
    const y = b.tables.get(t.name)?.units.get(unit);
    if ((x?.rows ?? 0) !== (y?.rows ?? 0) || (x?.checksum ?? '0') !== (y?.checksum ?? '0')) {
      return `table ${t.name}: ${x?.rows ?? 0} rows on the old shard, ${y?.rows ?? 0} on the new one${x?.rows === y?.rows ? ', checksums differ' : ''}`;
    }
  }
  return undefined;
}
