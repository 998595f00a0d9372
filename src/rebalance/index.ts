import pLimit from 'p-limit';
import { catalogHasPlacements, placementTotals, readPlacements } from '../catalog/placements.js';
import { refreshCrossRecord } from '../multi-route/refresh-record.js';
import type { Config } from '../config/types.js';
import { withRun } from '../catalog/run.js';
import { catalogLost, isCatalogLost } from '../catalog/catalog.js';
import { isConnectError, withClient } from '../db/connect.js';
import { blockedError, UserError } from '../errors.js';
import { failureText, isConnectionLoss, pgFailure } from '../db/pg-error.js';
import { shardEndpoint } from '../db/endpoints.js';
import { syncReferenceTables } from '../unit-copy/reference.js';
import { topologyRouter } from '../routing/router.js';
import { loadModel, type Model } from '../tables/model.js';
import { recordedShards } from '../catalog/topology.js';
import { recordTopology } from '../fence/record-topology.js';
import { findUnplaced } from '../unit-copy/unplaced.js';
import { installGuard } from '../fence/unit-guard.js';
import { movesInFlight, type MovePointHook, type Step } from './journal.js';
import { moveGroup, moveUnit, undoMove, type MoveContext } from './move.js';
import { journaledGroups, planJobs, type Groupable, type MoveJob } from './groups.js';
import { applyReadOnly, type ReadOnlyResult } from './read-only.js';
import { checkOnlineMoves } from './preflight.js';
import { refuseInOnlineWindow } from '../stream/window.js';

export type RebalanceEvent =
  | {
      type: 'plan';
      moves: number;
      resumed: number;
      /** units found on the shards without a placement, placed where they are */
      unplaced?: number;
      /** a preview that could not look for them: why */
      unplacedUnknown?: string;
    }
  | { type: 'step'; unit: string; from: string; to: string; step: Step }
  | {
      type: 'moved';
      unit: string;
      from: string;
      to: string;
      rows: number;
      online: boolean;
      /** seconds the unit's writes were refused (fencing the old shard → writable on the new one); absent when a rerun resumed past the fence */
      outageSeconds?: number;
      /** online: units moved together over one stream (this one among them) */
      group?: number;
      /** online: the changes applied from the old shard's stream by this run, for the unit's whole group */
      catchUpChanges?: number;
      /** online: rows changed since the copy, proven equal on both shards while writes went on */
      provenRows?: number;
      /** online: rows compared inside the fence (changed since the last proof; never the whole unit) */
      checkedRows?: number;
    }
  | { type: 'failed'; unit: string; from: string; to: string; reason: string };

export interface RebalanceOptions {
  /** carry the moves out (default: only show them) */
  apply?: boolean;
  /** units moved at once (default 2) */
  concurrency?: number;
  /** fence each unit for its whole copy instead of streaming its changes (servers without logical decoding) */
  offline?: boolean;
  /**
   * online: the bound on every wait once a unit's old shard is fenced (its final catch-up and the
   * proof of its rows changed since the last proof); missed, the fence is lifted and the move undone
   * (default 5 s)
   */
  timeoutSeconds?: number;
  signal?: AbortSignal;
  onEvent?: (e: RebalanceEvent) => void;
  /**
   * With apply: runs once the preflight passed (catalog reached, run lock held, no rollback window)
   * and before anything changes, so a topology edit (pin, mapping set) is written to the config file
   * only when the moves can start; a throw ends the run with nothing changed.
   */
  onPreflightPassed?: () => void | Promise<void>;
  /**
   * Called synchronously at each point of each move (after each journaled step, and inside steps:
   * journal.ts MovePoint). For tests: one that kills the process there proves a rerun resumes.
   */
  onMovePoint?: MovePointHook;
}

/** A move of the plan: the unit, its shards, size and journal state (groups.ts Groupable), and how it went. */
export interface PlannedMove extends Groupable {
  status: 'planned' | 'moved' | 'failed';
  reason?: string;
  /** failed: the move could not proceed (a bound missed, a lock held) and was undone: exit 3 rather than 1 */
  blocked?: boolean;
  /** moved: whether online (copy while writes go on) */
  online?: boolean;
  /** moved: seconds the unit's writes were refused */
  outageSeconds?: number;
}

export interface RebalanceResult {
  applied: boolean;
  runId?: number;
  /** per source → target pair */
  pairs: { from: string; to: string; units: number; rows: number; bytes: number }[];
  moves: PlannedMove[];
  ok: boolean;
  seconds: number;
  /** h3, with apply: the read-only cells fenced on each shard */
  readOnly?: ReadOnlyResult[];
  /** with apply, tables with several routes: their rows and how many live on more than one shard (the catalog's record, refreshed) */
  crossShard?: { table: string; rows: number; crossShard: number }[];
}

/**
 * The moves implied by the placements against current routing (a new shard, a pin, a mapping edit),
 * shown by default and carried out unit by unit with `apply` (see move.ts for the six steps).
 * Interrupted moves in the journal are completed first, whatever the routing says now.
 *
 * @example await rebalance(loadConfig('shardctl.yaml'), { apply: true });
 */
export async function rebalance(config: Config, opts: RebalanceOptions = {}): Promise<RebalanceResult> {
  const started = performance.now();
  const emit = opts.onEvent ?? (() => undefined);
  const spec = {
    command: 'rebalance',
    args: { concurrency: opts.concurrency, offline: opts.offline, timeoutSeconds: opts.timeoutSeconds },
    lock: opts.apply ? ('run' as const) : ('none' as const),
    // a preview creates no catalog schema: with none yet, nothing is placed and nothing moves
    create: Boolean(opts.apply),
    outcome: (r: RebalanceResult) => ({ status: r.ok ? ('ok' as const) : ('failed' as const), summary: summary(r) }),
  };
  let cachedModel: Model | undefined;
  // the table model, read from a shard that serves (the source may be retired after cutover)
  const modelOf = async (origin?: string) => {
    const id = origin ?? config.shards[0]!.id;
    return (cachedModel ??= await withClient(shardEndpoint(config, id), (c) => loadModel(config, c, `shard ${id}`)));
  };
  return withRun(config.catalog, spec, async ({ catalog, run, finish }) => {
    if (!opts.apply && !(await catalogHasPlacements(catalog.client))) {
      return done({ applied: false, pairs: [], moves: [], ok: true, seconds: 0 }, started);
    }
    const placed = await placementTotals(catalog.client);
    // units created on the shards after migrate have no placement: placed where their rows are (in
    // syncTopology's transaction below), they are held and moved like the others (one scan per shard)
    // A preview reaches no further than it can: a shard it cannot read leaves the count out and says so
    // (the --apply run scans again, and refuses, before it records anything).
    let unplacedUnknown: string | undefined;
    const recorded = await recordedShards(catalog.client);
    const scan = async () =>
      placed.length
        ? await findUnplaced(
            config,
            await modelOf([...new Set(placed.map((p) => p.shard))].sort()[0]),
            new Set(placed.map((p) => p.unit)),
            // a shard the catalog does not record yet (add-shard's preview) holds no unit, nor the tables to look in
            config.shards.map((s) => s.id).filter((id) => recorded.has(id)),
          )
        : [];
    const unplaced = opts.apply
      ? await scan()
      : await scan().catch((e: unknown) => {
          if (!isConnectError(e)) throw e;
          unplacedUnknown = (e as Error).message;
          return [];
        });
    for (const u of unplaced) placed.push({ unit: u.unit, shard: u.shard, rows: String(u.rows), bytes: String(u.bytes) });
    const known = new Set(config.shards.map((s) => s.id));
    const unknown = [...new Set(placed.map((p) => p.shard).filter((s) => !known.has(s)))];
    if (unknown.length) {
      throw blockedError(`the catalog places units on shard(s) ${unknown.join(', ')}, which ${config.file} does not list`, {
        hint: 'removing a shard is not supported: restore it in the config',
      });
    }
    // serialises catalog statements (one catalog connection, many moves) and checks the lock first
    const serial = pLimit(1);
    const journal = <T>(fn: () => Promise<T>) =>
      serial(async () => {
        await catalog.assertLocked();
        try {
          return await fn();
        } catch (e) {
          throw isConnectionLoss(e) ? catalogLost(`the catalog connection failed: ${failureText(e, 'catalog')}`) : e;
        }
      });
    // A move journaled as started may have set fences but copied nothing, an online move journaled as
    // target-fenced may have a slot and part of a copy: undo them and plan afresh.
    if (run) {
      const stale = (await movesInFlight(catalog.client)).filter((m) => m.step === 'started' || m.step === 'target-fenced');
      for (const { group, step } of journaledGroups(stale)) {
        await undoMove({ config, model: await modelOf(), catalog: catalog.client, journal }, group, step === 'target-fenced');
      }
    }
    const inflight = await movesInFlight(catalog.client);
    const router = topologyRouter(config);
    const routeOf = (u: string) => router.shardForUnit(u);
    const resuming = new Map(inflight.map((m) => [m.unit, m]));
    const moves: PlannedMove[] = [];
    for (const p of placed) {
      const r = resuming.get(p.unit);
      const base = { unit: p.unit, rows: Number(p.rows), bytes: Number(p.bytes), status: 'planned' as const };
      if (r) moves.push({ ...base, from: r.from, to: r.to, resumeAfter: r.step, stream: r.stream });
      else if (routeOf(p.unit) !== p.shard) moves.push({ ...base, from: p.shard, to: routeOf(p.unit) });
    }
    moves.sort((a, b) => Number(b.resumeAfter !== undefined) - Number(a.resumeAfter !== undefined) || a.unit.localeCompare(b.unit));
    emit({ type: 'plan', moves: moves.length, resumed: inflight.length, unplaced: unplaced.length, unplacedUnknown });
    let lost: unknown;
    const result: RebalanceResult = { applied: Boolean(opts.apply), runId: run?.id, pairs: pairsOf(moves), moves, ok: true, seconds: 0 };
    if (!opts.apply) return done(result, started);
    await refuseInOnlineWindow(catalog.client, 'rebalance --apply');
    await opts.onPreflightPassed?.();

    // Reference rows come from a shard that already serves (the source may be retired after cutover).
    const origin = moves[0]?.from ?? [...new Set(placed.map((p) => p.shard))].sort()[0] ?? config.shards[0]!.id;
    const model = await modelOf(origin);
    // units created while the topology is recorded are found or refused (record-topology.ts); one
    // found only now (created after the plan's scan) is moved as well when it is not home
    const planned = new Set(placed.map((p) => p.unit));
    // (its rule writes wait for writers in flight on every shard: the catalog connection may drop meanwhile)
    const placedNow = await recordTopology(catalog.client, config, { fleet: config, model, unplaced, rescan: scan, runId: run?.id }).catch((e: unknown) => {
      throw isConnectionLoss(e) ? catalogLost(`the catalog connection failed: ${failureText(e, 'catalog')}`) : e;
    });
    for (const u of placedNow) {
      if (planned.has(u.unit) || routeOf(u.unit) === u.shard) continue;
      moves.push({ unit: u.unit, from: u.shard, to: routeOf(u.unit), rows: u.rows, bytes: u.bytes, status: 'planned' });
      result.pairs = pairsOf(moves);
    }
    await syncReferences(config, model, origin, opts.signal);
    if (moves.length > 0) {
      // rows with several routes are shared by units: their moves stay offline (the stream's unit
      // filter knows one route per table)
      const online = !opts.offline && !model.sharded.some((t) => t.config.routes);
      // moves between the same two shards share a stream, a bounded group at a time (groups.ts)
      const jobs = planJobs(moves, online);
      // a slot per group, not per unit
      const streams = jobs.flatMap((j) => (j.kind === 'group' ? [{ from: j.group.from, resumeAfter: j.at }] : []));
      if (online) await checkOnlineMoves(config, model, streams, Math.max(1, opts.concurrency ?? 2));
      await installGuards(config, model, moves);
      // rows with several routes are shared by units: one move at a time (offline), so each move's delete
      // sees the others' settled placements (concurrent moves could each keep a copy for the other)
      const limit = pLimit(model.sharded.some((t) => t.config.routes) ? 1 : Math.max(1, opts.concurrency ?? 2));
      const ctx: MoveContext = {
        config, model, catalog: catalog.client, journal, runId: run!.id, signal: opts.signal,
        fencedWaitMs: opts.timeoutSeconds === undefined ? undefined : opts.timeoutSeconds * 1000,
        onStep: (x, step) => emit({ type: 'step', unit: x.unit, from: x.from, to: x.to, step }),
        onMovePoint: opts.onMovePoint,
      };
      const failed = (m: PlannedMove, reason: string, blocked?: boolean) => {
        m.status = 'failed';
        m.reason = reason;
        m.blocked = blocked;
        emit({ type: 'failed', unit: m.unit, from: m.from, to: m.to, reason });
      };
      const runJob = async (job: MoveJob<PlannedMove>) => {
        if (job.kind === 'offline') {
          const m = job.move;
          const out = await moveUnit(ctx, m.resumeAfter ? { unit: m.unit, from: m.from, to: m.to, step: m.resumeAfter } : { unit: m.unit, from: m.from, to: m.to });
          if (!out.ok) return failed(m, out.reason, out.blocked);
          m.status = 'moved';
          m.online = out.online;
          m.outageSeconds = out.outageSeconds;
          emit({ type: 'moved', unit: m.unit, from: m.from, to: m.to, rows: out.rows, online: out.online, outageSeconds: out.outageSeconds });
          return;
        }
        const out = await moveGroup(ctx, job.group, job.at);
        for (const m of job.moves) {
          if (!out.ok) {
            failed(m, out.reason, out.blocked);
            continue;
          }
          m.status = 'moved';
          m.online = true;
          m.outageSeconds = out.outageSeconds;
          emit({
            type: 'moved', unit: m.unit, from: m.from, to: m.to, rows: out.copied ? m.rows : 0, online: true, outageSeconds: out.outageSeconds,
            group: job.moves.length, catchUpChanges: out.catchUpChanges, provenRows: out.provenRows.get(m.unit), checkedRows: out.checkedRows.get(m.unit),
          });
        }
      };
      await Promise.all(
        jobs.map((job) =>
          limit(async () => {
            if (opts.signal?.aborted) return;
            try {
              await runJob(job);
            } catch (e) {
              if (isCatalogLost(e)) lost ??= e;
              if (opts.signal?.aborted || isCatalogLost(e)) return;
              for (const m of job.kind === 'offline' ? [job.move] : job.moves) failed(m, failureText(e, `${m.unit} ${m.from} → ${m.to}`));
            }
          }),
        ),
      );
    }
    if (lost) throw lost;
    // a move's fence replaces a read-only mark and lifting it removes it: mark read-only cells again
    if (!opts.signal?.aborted) result.readOnly = await applyReadOnly(config, model);
    if (!opts.signal?.aborted && model.sharded.some((t) => t.config.routes)) {
      const placements = await readPlacements(catalog.client);
      result.crossShard = await refreshCrossRecord(config, model, catalog.client, (u) => placements.get(u) ?? routeOf(u), 'rebalance');
    }
    if (opts.signal?.aborted) {
      await finish('interrupted', summary(result));
      const moved = result.moves.filter((m) => m.status === 'moved').length;
      const stopped = result.moves.filter((m) => m.status === 'failed').map((m) => `${m.unit}: ${m.reason}`);
      throw new UserError('interrupted', `interrupted: ${moved} unit(s) moved, ${stopped.length} move(s) stopped`, {
        details: stopped,
        hint: 'run the same command again to move the rest',
      });
    }
    return done(result, started);
  });
}

/** Every shard involved in a move gets the fence guard. */
async function installGuards(config: Config, model: Model, moves: PlannedMove[]): Promise<void> {
  const involved = new Set(moves.flatMap((m) => [m.from, m.to]));
  await Promise.all(
    [...involved].map((id) => {
      const e = shardEndpoint(config, id);
      return withClient(e, (c) => installGuard(c, e, model));
    }),
  );
}

/** Every shard gets the reference tables as `origin` has them (a new shard has none); identical ones are left alone. */
async function syncReferences(config: Config, model: Model, origin: string, signal?: AbortSignal): Promise<void> {
  await Promise.all(
    config.shards
      .filter((s) => s.id !== origin)
      .map((s) =>
        syncReferenceTables(model.reference, shardEndpoint(config, origin), shardEndpoint(config, s.id), signal).catch((e) => {
          throw pgFailure(e, `shard ${s.id}, reference tables`);
        }),
      ),
  );
}

function pairsOf(moves: PlannedMove[]): RebalanceResult['pairs'] {
  const pairs = new Map<string, RebalanceResult['pairs'][number]>();
  for (const m of moves) {
    const key = `${m.from}\u0000${m.to}`;
    const p = pairs.get(key) ?? pairs.set(key, { from: m.from, to: m.to, units: 0, rows: 0, bytes: 0 }).get(key)!;
    p.units++;
    p.rows += m.rows;
    p.bytes += m.bytes;
  }
  return [...pairs.values()].sort((a, b) => a.from.localeCompare(b.from) || a.to.localeCompare(b.to));
}

function done(r: RebalanceResult, started: number): RebalanceResult {
  r.seconds = (performance.now() - started) / 1000;
  r.ok = r.moves.every((m) => m.status !== 'failed');
  return r;
}

const summary = (r: RebalanceResult) => ({
  moves: r.moves.length,
  moved: r.moves.filter((m) => m.status === 'moved').length,
  failed: r.moves.filter((m) => m.status === 'failed').length,
});
