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
import { type CatchUp, catchUp, copyOnline, describeGroup, dirtyKey, dropMoveStream, groupStreamNames, type MoveGroup } from './online.js';
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
/**
 * Whether a move goes on online: a journaled move goes on as it began; a step both lists share
 * completes either way (then `online`, this run's mode).
 */
export const movesOnline = (step: Step | undefined, online: boolean): boolean =>
  step ? (isOnlineStep(step) ? true : isOfflineStep(step) ? false : online) : online;

/** Moves one unit OFFLINE (see above); an online move is a group's, of one unit or more (moveGroup). */
export async function moveUnit(ctx: MoveContext, move: MoveRow | (Unit & { step?: undefined })): Promise<MoveOutcome> {
  return moveOffline(ctx, move);
}

/** The steps of one group of moves (offline: always one): where it stands, and journaling the next one for all of them at once. */
function progress(ctx: MoveContext, g: MoveGroup, list: readonly Step[], at: Step | undefined, stream?: string) {
  const moves = g.units.map((unit) => ({ unit, from: g.from, to: g.to }));
  const point = (at: MovePoint) => {
    for (const m of moves) ctx.onMovePoint?.(at, m);
  };
  const reached = (s: Step) => {
    p.last = list.indexOf(s);
    for (const m of moves) ctx.onStep?.({ ...m, step: s }, s);
    point(s);
  };
  const p = {
    last: at ? list.indexOf(at) : -1,
    pending: (s: Step) => p.last < list.indexOf(s),
    passed: (s: Step) => p.last >= list.indexOf(s),
    point,
    step: async (s: Step) => {
      await ctx.journal(() => journalStep(ctx.catalog, ctx.runId, moves, s, stream));
      reached(s);
    },
    /** every placement of the group, in one catalog transaction */
    flip: async () => {
      const router = topologyRouter(ctx.config); // the topology this run recorded
      await ctx.journal(() => flipPlacement(ctx.catalog, ctx.runId, moves.map((m) => ({ ...m, wanted: router.shardForUnit(m.unit) }))));
      reached('flipped');
    },
  };
  return p;
}

/** The steps both modes share once the new shard holds the units: compare each on both shards, then flip the placements. */
async function verifyAndFlip(ctx: MoveContext, p: ReturnType<typeof progress>, g: MoveGroup, from: Endpoint, to: Endpoint): Promise<void> {
  if (p.pending('verified')) {
    for (const unit of g.units) {
      ctx.signal?.throwIfAborted();
      const differs = await compareUnit(ctx, unit, from, to);
      if (differs) throw new MoveRefused(differs);
    }
    await p.step('verified');
  }
  if (p.pending('flipped')) {
    ctx.signal?.throwIfAborted();
    await p.flip();
  }
}

async function moveOffline(ctx: MoveContext, move: MoveRow | (Unit & { step?: undefined })): Promise<MoveOutcome> {
  const m: Unit = { unit: move.unit, from: move.from, to: move.to };
  const g = groupOf(m);
  const from = shardEndpoint(ctx.config, m.from);
  const to = shardEndpoint(ctx.config, m.to);
  const p = progress(ctx, g, STEPS, move.step);
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
      await setFence(ctx, from, g, 'source');
      await fenceTarget(ctx, p, to, g, homes);
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
    await verifyAndFlip(ctx, p, g, from, to);
    if (pending('deleted')) {
      await deleteUnit(ctx.model, from, m.unit, onShard(m.from, homes));
      await step('deleted');
    }
    let outageSeconds: number | undefined;
    if (pending('lifted')) {
      outageSeconds = await reopen(ctx, g, from, to, fencingAt);
      await step('lifted');
    }
    await ctx.journal(() => finishMove(ctx.catalog, g.units));
    return { ok: true, rows, online: false, outageSeconds };
  } catch (e) {
    if (isCatalogLost(e)) throw e; // another run may own the fleet now: touch nothing
    const reason = failureText(e, `shard ${m.from} → ${m.to}`);
    return { ok: false, reason: `${reason}; ${await settle(ctx, g, p.passed('flipped'), p.passed('fenced'))}`, blocked: isBlocked(e) };
  }
}

/** A single unit's move as a group of one. */
export const groupOf = (m: Unit): MoveGroup => ({ from: m.from, to: m.to, units: [m.unit], names: groupStreamNames([m.unit]) });

/**
 * Moves a group of units ONLINE over one stream (online.ts; a single unit is a group of one),
 * resuming after the last journaled step (ONLINE_STEPS), which every move of the group reaches
 * together (one catalog statement):
 *   0 started        journaled (with the group's stream name) before anything is created or fenced
 *   1 target-fenced  writes to the units refused on `to` only, which is proven to hold none of their rows
 *   2 streaming      slot + publication on `from`; the units copied from the slot's snapshot while
 *                    their writes go on there; `to` knows the stream position the copy stands at
 *   3 caught-up      the units' changes applied to `to`, the rows they changed proven equal on
 *                    both shards as it goes, unit by unit (unit-changed.ts); then `from` fenced for
 *                    every unit of the group at once (the write outage starts), the changes up to a
 *                    barrier after the fence applied and the rows changed since the last proof
 *                    compared: `to` holds every write `from` accepted, proven. All waits after the
 *                    fence are bounded (`fencedWaitMs`): a missed bound lifts the fence on `from`
 *                    first and undoes the move of the whole group.
 *   4 verified       journaled right after (a rerun resuming at caught-up compares the recorded
 *                    rows again, or the whole units if the record is gone)
 *   5 flipped        the catalog placements say `to`, in one catalog transaction
 *   6 opened         `from` keeps a tombstone fence, `to` lifts its fence: the outage ends; then
 *                    the slot, the publication and the records of changed rows are dropped
 *   7 purged         the units' old rows deleted from `from`
 * A crash before `streaming` is undone by the next run (which plans the moves afresh); from
 * `streaming` on, the next run resumes the group (named in the journal) from the position `to` committed.
 */
export async function moveGroup(ctx: MoveContext, g: MoveGroup, at?: Step): Promise<GroupOutcome> {
  const from = shardEndpoint(ctx.config, g.from);
  const to = shardEndpoint(ctx.config, g.to);
  const p = progress(ctx, g, ONLINE_STEPS, at, g.names.slot);
  const { pending, step } = p;
  let copied = false;
  let fencingAt: number | undefined;
  let catchUpChanges: number | undefined;
  let proof: Pick<CatchUp, 'provenRows' | 'checkedRows'> | undefined;
  const guard = () => ctx.signal?.throwIfAborted();
  const homes = catalogHomes(ctx.config, ctx.catalog, ctx.journal);
  const run = { signal: ctx.signal, onPoint: p.point };
  try {
    if (pending('started')) {
      guard();
      await step('started');
    }
    if (pending('target-fenced')) {
      guard();
      await fenceTarget(ctx, p, to, g, homes);
      await step('target-fenced');
    }
    if (pending('streaming')) {
      guard();
      await copyOnline(ctx.config, ctx.model, g, run);
      copied = true;
      await step('streaming');
    }
    if (pending('caught-up')) {
      guard();
      const r = await catchUp(ctx.config, ctx.model, g, {
        fence: async () => {
          await setFence(ctx, from, g, 'source');
          p.point('source-fencing');
        },
        signal: ctx.signal,
        onPoint: p.point,
        fencedWaitMs: ctx.fencedWaitMs,
      });
      fencingAt = r.fencingAt;
      catchUpChanges = r.changes;
      proof = r;
      await step('caught-up');
      await step('verified'); // catchUp proved it, inside the fence
    }
    if (pending('verified')) {
      guard();
      const differs = await verifyResumed(ctx, g, from, to);
      if (differs) throw new MoveRefused(differs);
      await step('verified');
    }
    await verifyAndFlip(ctx, p, g, from, to);
    let outageSeconds: number | undefined;
    if (pending('opened')) {
      outageSeconds = await reopen(ctx, g, from, to, fencingAt);
      await step('opened');
    }
    // after the outage (dropping a slot waits for its sender to end); also when resuming: a crash may have come before it
    await dropMoveStream(ctx.config, g);
    if (pending('purged')) {
      for (const unit of g.units) await deleteUnit(ctx.model, from, unit, onShard(g.from, homes));
      await step('purged');
    }
    await ctx.journal(() => finishMove(ctx.catalog, g.units));
    return {
      ok: true, copied, online: true, outageSeconds, catchUpChanges,
      provenRows: proof?.provenRows ?? new Map(), checkedRows: proof?.checkedRows ?? new Map(),
    };
  } catch (e) {
    if (isCatalogLost(e)) throw e; // another run may own the fleet now: touch nothing
    const reason = failureText(e, `shard ${g.from} → ${g.to}`);
    // before `caught-up` is journaled a rerun fences the old shard again before its last catch-up, so
    // the old shard may take writes again first, before a cleanup that waits on a stuck new shard
    return { ok: false, reason: `${reason}; ${await settle(ctx, g, p.passed('flipped'), p.passed('target-fenced'), !p.passed('caught-up'))}`, blocked: isBlocked(e) };
  }
}

/** How a group's move ended: for every unit of the group alike, but its proof, which is per unit. */
export type GroupOutcome =
  | {
      ok: true;
      /** whether this run copied the units (else it resumed past the copy) */
      copied: boolean;
      online: true;
      outageSeconds?: number;
      /** changes of the group's units applied from the stream by this run */
      catchUpChanges?: number;
      provenRows: ReadonlyMap<string, number>;
      checkedRows: ReadonlyMap<string, number>;
    }
  | { ok: false; reason: string; blocked?: boolean };

/**
 * A rerun resuming an online move at `caught-up` (the old shard still fenced): the rows the move
 * recorded as changed since its last proof are compared again, unit by unit (unit-changed.ts); if
 * the record is gone with the stream position, the whole units are. Undefined when equal.
 */
async function verifyResumed(ctx: MoveContext, g: MoveGroup, from: Endpoint, to: Endpoint): Promise<string | undefined> {
  const recorded = await withClient(to, async (t) => Boolean(await readPosition(t, g.names.slot).catch(() => undefined)));
  for (const unit of g.units) {
    const differs = recorded
      ? await withClient(to, (t) =>
          withClient(from, async (f) => {
            const check = await checkChangedRows(ctx.model, unit, dirtyKey(unit), f, t);
            return check.problems.length ? changedRowsDiffer({ unit, from: g.from, to: g.to }, check) : undefined;
          }),
        )
      : await compareUnit(ctx, unit, from, to);
    if (differs) return differs;
  }
  return undefined;
}

/** A move that cannot go on; its message is the reason shown to the user. */
class MoveRefused extends Error {}

const isBlocked = (e: unknown): boolean => isUserError(e) && e.kind === 'blocked';

/**
 * Leaves the units of a group whose move stopped writable on exactly their placed shard, and says so:
 *  - not flipped: the move is undone (the copy, if any, deleted from the target; both fences and
 *    the journal rows removed): the units stay on `from`;
 *  - flipped: the units are placed on `to`, whose fence is lifted; `from` keeps its fence and the
 *    journal rows, so the next run deletes the old copies there.
 * If the cleanup fails too, the journal rows stay and the next run resumes the move.
 */
async function settle(ctx: MoveContext, g: MoveGroup, flipped: boolean, fenced: boolean, fromFirst = false): Promise<string> {
  const who = describeGroup(g);
  try {
    if (flipped) {
      await withClient(shardEndpoint(ctx.config, g.to), (c) => openHere(c, g));
      return `${who} placed on shard ${g.to} and writable there; the old rows on shard ${g.from} are still fenced there: run the same command again to delete them`;
    }
    await undoMove(ctx, g, fenced, fromFirst);
    return `the move was undone: ${who} stay${g.units.length === 1 ? 's' : ''} on shard ${g.from}, writable there`;
  } catch (e) {
    const why = failureText(e, 'cleanup');
    return `${who} placed on shard ${flipped ? g.to : g.from} but may still be fenced (cleaning up failed: ${why}): run the same command again`;
  }
}

/**
 * Undoes a group's move that has not flipped: fences lifted, journal rows gone, and with `fenced`
 * (the target was fenced and proven free of the units' rows, so whatever it holds of them now is
 * shardctl's copy) the units' rows removed from the target first.
 */
export async function undoMove(ctx: Pick<MoveContext, 'config' | 'model' | 'catalog' | 'journal'>, g: MoveGroup, fenced: boolean, fromFirst = false): Promise<void> {
  const to = shardEndpoint(ctx.config, g.to);
  const unfenceFrom = () => withClient(shardEndpoint(ctx.config, g.from), (c) => unfenceUnits(c, g.units));
  // `fromFirst`: the units' placed shard takes writes again before a cleanup that may wait on a
  // stuck new shard (the target keeps its fence until its copy is gone); only where the journal
  // makes a rerun fence the old shard again before it trusts the copy
  if (fromFirst) await unfenceFrom();
  await dropMoveStream(ctx.config, g); // an online move's slot and publication (none for an offline one)
  if (fenced) {
    const homes = catalogHomes(ctx.config, ctx.catalog, ctx.journal);
    for (const unit of g.units) await deleteUnit(ctx.model, to, unit, onShard(g.to, homes));
  }
  await withClient(to, (c) => unfenceUnits(c, g.units));
  if (!fromFirst) await unfenceFrom();
  await ctx.journal(() => finishMove(ctx.catalog, g.units));
}

/**
 * Fences the units on the target, which must then hold none of their rows: `pin`, `mapping set` and
 * `add-shard` publish the new topology before data moves, and rows an application router wrote
 * there meanwhile are the application's, never a stale copy to delete.
 */
async function fenceTarget(ctx: MoveContext, p: ReturnType<typeof progress>, to: Endpoint, g: MoveGroup, homes: HomesOf): Promise<void> {
  await setFence(ctx, to, g, 'target');
  p.point('fencing');
  for (const unit of g.units) {
    const found = await unitRowsOn(ctx.model, to, unit, onShard(g.to, homes));
    if (found) throw new MoveRefused(`shard ${g.to} already holds rows of unit ${unit} (${found}), written there before the move (an application router on the new topology?); shardctl does not delete them: move them to shard ${g.from} or delete them, then run again`);
  }
}

/**
 * The units' write outage ends, in this order: `from` keeps a tombstone fence (for stale routers),
 * then `to` lifts its fence. Returns the outage in seconds when this run began it (`fencingAt`).
 */
async function reopen(ctx: MoveContext, g: MoveGroup, from: Endpoint, to: Endpoint, fencingAt: number | undefined): Promise<number | undefined> {
  await setFence(ctx, from, g, 'moved');
  await withClient(to, (c) => openHere(c, g));
  return fencingAt === undefined ? undefined : (performance.now() - fencingAt) / 1000;
}

/** The flipped units' new shard routes them there (route-guard.ts), then lifts their fence. */
async function openHere(c: pg.ClientBase, g: MoveGroup): Promise<void> {
  for (const unit of g.units) await routeHere(c, unit, g.to);
  await unfenceUnits(c, g.units);
}

/** One fence change for every unit of the group (one wait for writers in flight). */
const setFence = (ctx: MoveContext, e: Endpoint, g: MoveGroup, role: FenceRole) =>
  withClient(e, (c) => fenceUnits(c, e, ctx.config, g.units.map((unit) => ({ unit, from: g.from, to: g.to, role }))));

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
