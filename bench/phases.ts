import { migrate, type MigrateResult, type MigrateEvent, verify } from '../src/index.js';
// VERIFY CALL SITE — the bench's only dependency on src/verify (see runVerify below).
import type { BenchPlan } from './fleet.js';
import { verifyExit } from '../commands/exit-codes.js';

/**
 * Where a migrate run spent its wall time, from the engine's own 'step' events (run-level steps,
 * wall seconds) and the per-step seconds each 'batch' event carries (summed over the run's batches:
 * stream-seconds, which exceed the batches' wall time when batches run side by side).
 */
export interface MigrateBreakdown {
  /** lock, model, inventory, source checks, the shards' checks beside them, row-scale estimate (until the 'start' event) */
  preflightS: number;
  /** the catalog's topology, deferred indexes dropped, reference tables to every shard */
  referenceS: number;
  /** from the reference tables done to the last batch journaled: the copy itself (+ checksums) */
  batchesS: number;
  /** summed over batches: connect, snapshot, DELETE of the units' old rows */
  prepareS: number;
  /** summed over batches: the COPY streams and the set-based foreign-key check */
  copyS: number;
  /** summed over batches: after the copy, waiting for the source's sums and computing the shard's */
  checksumsS: number;
  /** summed over batches: the COMMITs */
  commitS: number;
  /** summed over batches: the catalog journal of the placements and proofs (its queue included) */
  catalogS: number;
  /** the secondary indexes deferred for the initial load, built (wall) */
  indexesS: number;
  sequencesS: number;
  /** guards, cross-shard record, the run's record finished */
  finishS: number;
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
  const steps = new Map<string, number>();
  const sums = { prepare: 0, copy: 0, checksums: 0, commit: 0, journal: 0 };
  let batches = 0;
  const onEvent = (e: MigrateEvent) => {
    if (e.type === 'step') steps.set(e.step, (steps.get(e.step) ?? 0) + e.seconds);
    else if (e.type === 'batch') {
      batches++;
      for (const k of Object.keys(sums) as (keyof typeof sums)[]) sums[k] += e.seconds?.[k] ?? 0;
    } else if (e.type === 'batch-error') process.stderr.write(`  migrate: batch error on ${e.shard}: ${e.error}\n`);
  };
  const result = await migrate(plan.config, {
    concurrency: o.concurrency, batchRows: o.batchRows, verify: o.verify, signal: o.signal, onEvent, copyFormat: o.copyFormat, indexesAfter: o.indexesAfter,
  });
  if (!result.ok) throw new Error(`migrate did not finish cleanly: ${result.failures.length} failed units, ${result.errors.length} batch errors${result.errors[0] ? ` (${result.errors[0].error})` : ''}`);
  const s = (k: string) => steps.get(k) ?? 0;
  const batchesS = s('batches');
  return {
    result,
    breakdown: {
      preflightS: s('preflight'),
      referenceS: s('reference'),
      batchesS,
      prepareS: sums.prepare,
      copyS: sums.copy,
      checksumsS: sums.checksums,
      commitS: sums.commit,
      catalogS: sums.journal,
      indexesS: s('indexes'),
      sequencesS: s('sequences'),
      finishS: s('guards') + s('cross-shard') + s('finish'),
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
