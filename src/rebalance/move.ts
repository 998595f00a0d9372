import pLimit from 'p-limit';
import type pg from 'pg';
import type { Config } from '../config/types.js';
import { connect, withClient, withTransaction, type Endpoint } from '../db/connect.js';
import { copyBatch } from '../transfer/batch.js';
import { shardEndpoint } from '../db/endpoints.js';
import { prepareCells } from '../transfer/inventory.js';
import type { Model } from '../tables/model.js';
import { deleteSql, scopeOf } from '../tables/scope.js';
import { scanServer } from '../transfer/scan.js';
import { fenceUnits, unfenceUnits, type FenceRole } from '../transfer/fence.js';
import { faultPoint, finishMove, flipPlacement, journalStep, STEPS, type MoveRow, type Step } from './journal.js';

export interface MoveContext {
  readonly config: Config;
  readonly model: Model;
  readonly catalog: pg.ClientBase;
  /** serialises catalog statements: one catalog connection, many moves */
  readonly journal: <T>(fn: () => Promise<T>) => Promise<T>;
  readonly runId: number;
  readonly signal?: AbortSignal;
  onStep?(move: MoveRow, step: Step): void;
}

export type MoveOutcome = { ok: true; rows: number } | { ok: false; reason: string };

/**
 * Moves one unit from shard `from` to shard `to`, resuming after the last journaled step:
 *   1 fenced    writes to the unit refused on both shards (after in-flight writers finish)
 *   2 copied    delete-then-COPY into `to` in one transaction, checksummed against `from` before commit
 *   3 verified  counts and checksums compared again, both sides committed
 *   4 flipped   the catalog placement says `to`
 *   5 deleted   the unit's rows removed from `from` (one transaction, children first)
 *   6 lifted    the fence lifted on `to`; `from` keeps refusing writes (a tombstone for stale routers)
 * Every step is idempotent, so a crash anywhere is completed by running the same command again.
 * The unit is never absent from every shard, and only the placed copy is ever writable.
 */
export async function moveUnit(ctx: MoveContext, move: MoveRow | { unit: string; from: string; to: string; step?: undefined }): Promise<MoveOutcome> {
  const m = { unit: move.unit, from: move.from, to: move.to };
  const done = move.step ? STEPS.indexOf(move.step) + 1 : 0;
  const from = shardEndpoint(ctx.config, m.from);
  const to = shardEndpoint(ctx.config, m.to);
  let rows = 0;
  const step = async (s: Step) => {
    await ctx.journal(() => journalStep(ctx.catalog, ctx.runId, m, s));
    ctx.onStep?.({ ...m, step: s }, s);
    faultPoint(s);
  };
  const guard = () => ctx.signal?.throwIfAborted();

  if (done <= 0) {
    guard();
    await setFence(ctx, from, m, 'source');
    await setFence(ctx, to, m, 'target');
    await step('fenced');
  }
  if (done <= 1) {
    guard();
    const r = await copyBatch({ shard: m.to, units: [m.unit] }, {
      model: ctx.model, source: from, target: to, tables: ctx.model.sharded, verify: true, signal: ctx.signal,
    });
    if (r.failed.length) return abandon(ctx, m, r.failed[0]!.reason);
    rows = r.rows;
    await step('copied');
  }
  if (done <= 2) {
    guard();
    const differs = await compareUnit(ctx, m.unit, from, to);
    if (differs) return abandon(ctx, m, differs);
    await step('verified');
  }
  if (done <= 3) {
    guard();
    await ctx.journal(() => flipPlacement(ctx.catalog, ctx.runId, m));
    ctx.onStep?.({ ...m, step: 'flipped' }, 'flipped');
    faultPoint('flipped');
  }
  if (done <= 4) {
    await deleteUnit(ctx.model, from, m.unit);
    await step('deleted');
  }
  if (done <= 5) {
    await setFence(ctx, from, m, 'moved');
    await withClient(to, (c) => unfenceUnits(c, [m.unit]));
    await step('lifted');
  }
  await ctx.journal(() => finishMove(ctx.catalog, m.unit));
  return { ok: true, rows };
}

const setFence = (ctx: MoveContext, e: Endpoint, m: { unit: string; from: string; to: string }, role: FenceRole) =>
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
    if ((x?.rows ?? 0n) !== (y?.rows ?? 0n) || (x?.checksum ?? '0') !== (y?.checksum ?? '0')) {
      return `table ${t.name}: ${x?.rows ?? 0n} rows on the old shard, ${y?.rows ?? 0n} on the new one${x?.rows === y?.rows ? ', checksums differ' : ''}`;
    }
  }
  return undefined;
}

/** A move that cannot be proven exact is undone: the copy removed from the target, fences lifted. */
async function abandon(ctx: MoveContext, m: { unit: string; from: string; to: string }, reason: string): Promise<MoveOutcome> {
  await deleteUnit(ctx.model, shardEndpoint(ctx.config, m.to), m.unit);
  await withClient(shardEndpoint(ctx.config, m.to), (c) => unfenceUnits(c, [m.unit]));
  await withClient(shardEndpoint(ctx.config, m.from), (c) => unfenceUnits(c, [m.unit]));
  await ctx.journal(() => finishMove(ctx.catalog, m.unit));
  return { ok: false, reason };
}

/** Deletes a unit's rows from a shard in one transaction, children first. */
export async function deleteUnit(model: Model, shard: Endpoint, unit: string): Promise<void> {
  const c = await connect(shard);
  let reader: pg.Client | undefined;
  try {
    if (model.cellSpecs.length) {
      reader = await connect(shard);
      await prepareCells(c, reader, model, new Set([unit]));
    }
    await withTransaction(c, async () => {
      for (const t of [...model.sharded].reverse()) await c.query(deleteSql(t.config, scopeOf(model.ctx, t.config, [unit])));
    });
  } finally {
    await Promise.all([c.end().catch(() => undefined), reader?.end().catch(() => undefined)]);
  }
}
