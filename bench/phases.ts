import { migrate, type MigrateResult, type MigrateEvent, verify } from '../src/index.js';
// VERIFY CALL SITE — the bench's only dependency on src/verify (see runVerify below).
import type { BenchPlan } from './fleet.js';
import { verifyExit } from '../commands/exit-codes.js';

/** Where a migrate run spent its wall time, from the engine's own progress events. */
export interface MigrateBreakdown {
  /** lock, model, inventory, shard checks, foreign-row scan, row-scale estimate (until the 'start' event) */
  preflightS: number;
  /** reference tables to every shard */
  referenceS: number;
  /** from the first batch starting to the last batch journaled: the copy itself (+ checksums) */
  batchesS: number;
  /** deferred indexes built (--indexes-after; the slowest shard), sequences, catalog finish */
  finishS: number;
  /** --indexes-after: the slowest shard's index build, part of finishS */
  indexesS: number;
  batches: number;
  /** bytes / batchesS: the copy phase's own throughput */
  copyMBps: number;
}

export interface MigratePhase {
  result: MigrateResult;
  breakdown: MigrateBreakdown;
}

/** One `migrate` of the whole fleet, exactly as the CLI would run it (`--no-verify` ⇔ verify: false). */
export async function runMigrate(
  plan: BenchPlan,
  o: { concurrency: number; batchRows?: number; verify: boolean; signal?: AbortSignal; copyFormat?: 'auto' | 'text'; indexesAfter?: boolean },
): Promise<MigratePhase> {
  const t0 = performance.now();
  let tStart = t0;
  let tRef = 0;
  let tFirst = 0;
  let tLast = 0;
  let batches = 0;
  let indexesS = 0;
  const onEvent = (e: MigrateEvent) => {
    const now = performance.now();
    if (e.type === 'start') tStart = now;
    else if (e.type === 'reference') tRef = now;
    else if ((e.type === 'bytes' || e.type === 'table') && !tFirst) tFirst = now;
    else if (e.type === 'indexes') indexesS = Math.max(indexesS, e.seconds);
    else if (e.type === 'batch') {
      batches++;
      tLast = now;
    } else if (e.type === 'batch-error') process.stderr.write(`  migrate: batch error on ${e.shard}: ${e.error}\n`);
  };
  const result = await migrate(plan.config, {
    concurrency: o.concurrency, batchRows: o.batchRows, verify: o.verify, signal: o.signal, onEvent, copyFormat: o.copyFormat, indexesAfter: o.indexesAfter,
  });
  const tEnd = performance.now();
  if (!result.ok) throw new Error(`migrate did not finish cleanly: ${result.failures.length} failed units, ${result.errors.length} batch errors${result.errors[0] ? ` (${result.errors[0].error})` : ''}`);
  const refEnd = tRef || tStart;
  const batchesS = ((tLast || refEnd) - refEnd) / 1000;
  return {
    result,
    breakdown: {
      preflightS: (tStart - t0) / 1000,
      referenceS: (refEnd - tStart) / 1000,
      batchesS,
      finishS: (tEnd - (tLast || refEnd)) / 1000,
      indexesS,
      batches,
      copyMBps: batchesS > 0 ? result.bytes / 1e6 / batchesS : 0,
    },
  };
}

export interface VerifyPhase {
  ok: boolean;
  exitCode: number;
  seconds: number;
  rows: number;
  findings: number;
}

/**
 * `verify` of the migrated fleet (all units, all tables, source vs shards). The lead: this is the
 * one place the bench calls src/verify; if that module's API changes, only this function changes.
 */
export async function runVerify(plan: BenchPlan): Promise<VerifyPhase> {
  const r = await verify(plan.config, {});
  return {
    ok: r.ok,
    exitCode: verifyExit(r),
    seconds: r.seconds,
    rows: r.shards.reduce((n, s) => n + s.rows, 0),
    findings: r.findings.length,
  };
}
