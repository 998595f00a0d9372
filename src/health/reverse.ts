import type { Config } from '../config/types.js';
import { readOnline } from '../catalog/online.js';
import { lsn } from '../db/lsn.js';
import { REVERSE_STREAM, reverseKey } from '../stream/names.js';
import { slotState } from '../stream/slot.js';
import { timedSession } from './session.js';
import { grade, worst } from './status.js';
import type { CheckResult, HealthThresholds } from './types.js';

/** A rollback window (`cutover --reverse`) as health sees it, or null when none is open. */
export interface ReverseFacts {
  readonly state: string;
  /** shards whose reverse slot has no consumer (rollback --follow is not running), or is gone */
  readonly idle: string[];
  readonly missing: string[];
  /** the most WAL any shard keeps for its reverse slot */
  readonly retainedBytes: number | null;
  /** the largest gap between a shard's current WAL position and what the monolith committed of it */
  readonly lagBytes: number | null;
  /** seconds since the newest shard commit the monolith holds, worst shard (heartbeats commit every second) */
  readonly lagSeconds: number | null;
}

export async function readReverse(config: Config, timeoutMs: number): Promise<ReverseFacts | null> {
  const row = await timedSession({ label: 'catalog', url: config.catalog }, timeoutMs, (c) => readOnline(c, REVERSE_STREAM));
  if (!row.ok || !row.value || row.value.state === 'rolled-back') return null;
  const [mono, ...shards] = await Promise.all([
    timedSession({ label: 'source', url: config.source }, timeoutMs, async (c) => {
      const r = await c.query(
        `SELECT slot, lsn::text AS lsn, extract(epoch FROM now() - source_time)::float8 AS behind FROM shardctl.follow_position WHERE slot = ANY($1::text[])`,
        [config.shards.map((s) => reverseKey(s.id))],
      );
      return new Map(r.rows.map((x) => [x.slot as string, { lsn: lsn(x.lsn), behind: x.behind as number | null }]));
    }),
    ...config.shards.map((s) =>
      timedSession({ label: `shard ${s.id}`, url: s.primary }, timeoutMs, async (c) => ({
        slot: await slotState(c, REVERSE_STREAM),
        now: lsn((await c.query('SELECT pg_current_wal_lsn()::text AS l')).rows[0].l),
      })),
    ),
  ]);
  const lags = config.shards.map((s, i) => {
    const sh = shards[i]!;
    const pos = mono.ok ? mono.value.get(reverseKey(s.id)) : undefined;
    return sh.ok && pos ? Math.max(0, Number(sh.value.now - pos.lsn)) : null;
  });
  const behind = config.shards.map((s) => (mono.ok ? (mono.value.get(reverseKey(s.id))?.behind ?? null) : null));
  const retained = shards.map((s) => (s.ok ? (s.value.slot?.retainedBytes ?? null) : null));
  return {
    state: row.value.state,
    idle: config.shards.filter((_, i) => shards[i]!.ok && (shards[i] as { value: { slot?: { active: boolean } } }).value.slot?.active === false).map((s) => s.id),
    missing: config.shards.filter((_, i) => shards[i]!.ok && !(shards[i] as { value: { slot?: unknown } }).value.slot).map((s) => s.id),
    retainedBytes: retained.some((x) => x === null) ? null : Math.max(0, ...(retained as number[])),
    lagBytes: lags.some((x) => x === null) ? null : Math.max(0, ...(lags as number[])),
    lagSeconds: behind.some((x) => x === null) ? null : Math.max(0, ...(behind as number[])),
  };
}

/**
 * The rollback window: WARNING when the reverse follower is not running (each shard's slot keeps all
 * of its WAL meanwhile) or a slot is gone (rollback is no longer possible); lag and retained WAL
 * graded as the forward follower's.
 */
export function reverseChecks(f: ReverseFacts, t: HealthThresholds): CheckResult[] {
  const mb = (n: number | null) => (n === null ? '?' : `${(n / 1024 / 1024).toFixed(1)} MB`);
  const status = worst([
    f.idle.length || f.missing.length ? 'warning' : 'ok',
    f.retainedBytes === null ? 'unknown' : grade(f.retainedBytes, t.slotRetainedBytes),
    f.lagBytes === null ? 'unknown' : grade(f.lagBytes, t.lagBytes),
    // no time before the follower's first commit (lagBytes, graded above, still says how far behind)
    f.lagSeconds === null ? 'ok' : grade(f.lagSeconds, t.lagSeconds),
  ]);
  const lag = `lag ${mb(f.lagBytes)}, ${f.lagSeconds === null ? '?' : `${f.lagSeconds.toFixed(1)} s`}; the reverse slots retain up to ${mb(f.retainedBytes)} of WAL on a shard`;
  const why = [
    f.missing.length && `the reverse slot is gone from ${f.missing.join(', ')} (rollback is no longer possible; end the window with shardctl cutover --finish)`,
    f.idle.length && `the reverse follower is not running on ${f.idle.join(', ')} (run shardctl rollback --follow)`,
  ].filter(Boolean);
  const message = `rollback window ${f.state === 'fenced' ? 'open, a rollback is under way' : 'open'}${why.length ? `, but ${why.join('; ')}` : ''}: ${lag}`;
  return [{ check: 'rollback-window', status, message }];
}
