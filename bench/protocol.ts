import type { MigrateBreakdown } from './phases.js';
import type { RssStats } from './rss.js';

/**
 * The bench runs every measured phase in a child Node process (bench/worker.ts) that does nothing
 * else: the parent starts PostgreSQL and generates the fixture, which leaves its own process with
 * ~40-70 MiB of RSS no shardctl command would have. The child's RSS is what `shardctl migrate` or
 * `shardctl verify` would use, and every phase still runs in the same process, one after another.
 */
export type MeasuredPhase = 'baseline' | 'migrate-no-verify' | 'migrate' | 'migrate-text' | 'migrate-indexes-during' | 'verify' | 'row-by-row' | 'row-by-row-tx';

export type WorkerRequest =
  | { id: number; type: 'plan'; configPath: string; sampleRows: number }
  | { id: number; type: 'phase'; phase: MeasuredPhase; concurrency: number; batchRows?: number };

export interface PlanFacts {
  sourceRows: number;
  sourceBytes: number;
  unitsPerShard: Record<string, number>;
  sample: { units: number; rows: number };
  /** RSS of the worker once it has loaded the engine and planned (before any phase) */
  idleRssMB: number;
}

export interface PhaseOutcome {
  seconds: number;
  bytes: number;
  rows: number;
  rss: RssStats;
  breakdown?: MigrateBreakdown;
  /** verify only */
  verify?: { ok: boolean; exitCode: number; findings: number };
}

export type WorkerReply =
  | { id: number; ok: true; plan?: PlanFacts; phase?: PhaseOutcome }
  | { id: number; ok: false; error: string; aborted: boolean };
