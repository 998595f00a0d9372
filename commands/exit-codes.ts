import { ExitCode } from '../src/basics.js';
import type { FailoverResult, HealthStatus, ResolveResult, MigrateResult, RebalanceResult, RemoveShardResult, VerifyResult } from '../src/index.js';

/**
 * The exit code of each command's result (README "Exit codes"). The engine reports what happened,
 * per unit and shard; only the CLI turns that into a code.
 */

/** 0 all copied; 3 a batch could not reach its servers; 1 units that did not match or batches that failed. */
export const migrateExit = (r: MigrateResult): number =>
  r.ok ? ExitCode.ok : r.errors.some((e) => e.unreachable) ? ExitCode.blocked : ExitCode.mismatch;

/**
 * 0 every move done (or only shown); 1 moves that failed (a difference, a clash) and were undone;
 * 3 when every failed move could not proceed (a bound on its fence missed, a lock held) and was undone.
 */
export const rebalanceExit = (r: RebalanceResult): number =>
  r.ok ? ExitCode.ok : r.moves.every((m) => m.status !== 'failed' || m.blocked) ? ExitCode.blocked : ExitCode.mismatch;

/** 0 all match; 3 a server could not be read (verify is incomplete); 1 something differs. */
export const verifyExit = (r: VerifyResult): number =>
  r.errors.length ? ExitCode.blocked : r.findings.length ? ExitCode.mismatch : ExitCode.ok;

/** 0 promoted (or only shown) and the fleet is not CRITICAL afterwards; 1 health after the failover is CRITICAL. */
export const failoverExit = (r: FailoverResult): number => (r.applied && r.health?.status === 'critical' ? ExitCode.mismatch : ExitCode.ok);

/** 0 removed (or only shown); 1 moves failed, or the shard still holds something and stays; 3 as rebalance's when only blocked moves failed. */
export const removeShardExit = (r: RemoveShardResult): number =>
  !r.drain.ok ? rebalanceExit(r.drain) : r.drain.applied && !r.removed ? ExitCode.mismatch : ExitCode.ok;


/** 0 nothing left in doubt; 1 a transaction could not be finished, or its coordinator still runs. */
export const resolveExit = (r: ResolveResult): number => (r.ok ? ExitCode.ok : ExitCode.mismatch);

/** health's own table (monitoring convention, not the other commands'): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. */
export const healthExit = (s: HealthStatus): number => ({ ok: 0, warning: 1, critical: 2, unknown: 3 })[s];
