import type { HealthLevels } from '../config/types.js';
import type { CheckResult, Status } from './types.js';

/** Each status's number in the monitoring convention (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN): the metrics' status gauges. */
export const STATUS_CODE: Readonly<Record<Status, 0 | 1 | 2 | 3>> = { ok: 0, warning: 1, critical: 2, unknown: 3 };

/**
 * Aggregation order OK < WARNING < UNKNOWN < CRITICAL: a known outage outranks a check that could
 * not be made, and that outranks a known warning.
 */
const RANK: Readonly<Record<Status, number>> = { ok: 0, warning: 1, unknown: 2, critical: 3 };

export function worst(statuses: Iterable<Status>): Status {
  let w: Status = 'ok';
  for (const s of statuses) if (RANK[s] > RANK[w]) w = s;
  return w;
}

export const worstOf = (checks: readonly CheckResult[]): Status => worst(checks.map((c) => c.status));

export const byRank = (a: { status: Status }, b: { status: Status }): number => RANK[b.status] - RANK[a.status];

/** Above the critical level → critical, above the warning level → warning (equal is still fine). */
export function grade(value: number, levels: HealthLevels): Status {
  if (value > levels.critical) return 'critical';
  if (value > levels.warning) return 'warning';
  return 'ok';
}
