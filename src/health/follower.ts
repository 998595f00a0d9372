import type { Config } from '../config/types.js';
import { readOnline } from '../catalog/online.js';
import { lsn } from '../db/lsn.js';
import { MIGRATION_STREAM } from '../stream/names.js';
import { slotState } from '../stream/slot.js';
import { timedSession } from './session.js';
import { grade, worst } from './status.js';
import type { CheckResult, HealthThresholds } from './types.js';

/** An online migration's follower as health sees it (`migrate --follow`), or null when none runs. */
export interface FollowerFacts {
  readonly state: string;
  readonly slotActive: boolean;
  /** WAL the monolith keeps for the slot */
  readonly retainedBytes: number | null;
  /** monolith's current WAL position minus the position every shard has committed */
  readonly lagBytes: number | null;
  /** seconds since the newest monolith commit every shard holds (heartbeats commit every second) */
  readonly lagSeconds: number | null;
}

export async function readFollower(config: Config, timeoutMs: number): Promise<FollowerFacts | null> {
  const names = MIGRATION_STREAM;
  const row = await timedSession({ label: 'catalog', url: config.catalog }, timeoutMs, (c) => readOnline(c, names));
  if (!row.ok || !row.value || row.value.state === 'cut-over') return null;
  const [src, ...shards] = await Promise.all([
    timedSession({ label: 'source', url: config.source }, timeoutMs, async (c) => ({
      slot: await slotState(c, names),
      now: lsn((await c.query('SELECT pg_current_wal_lsn()::text AS l')).rows[0].l),
    })),
    ...config.shards.map((s) =>
      timedSession({ label: `shard ${s.id}`, url: s.primary }, timeoutMs, async (c) => {
        const r = await c.query(
          `SELECT lsn::text AS lsn, extract(epoch FROM now() - source_time)::float8 AS behind FROM shardctl.follow_position WHERE slot = $1`,
          [names.slot],
        );
        const p = r.rows[0] as { lsn: string; behind: number | null } | undefined;
        return p && { lsn: lsn(p.lsn), behind: p.behind };
      }),
    ),
  ]);
  const positions = shards.map((s) => (s.ok ? s.value : undefined));
  const known = positions.every((p) => p !== undefined);
  const min = known ? positions.reduce((m, p) => (p!.lsn < m ? p!.lsn : m), positions[0]!.lsn) : undefined;
  return {
    state: row.value.state,
    slotActive: src.ok && Boolean(src.value.slot?.active),
    retainedBytes: src.ok ? (src.value.slot?.retainedBytes ?? null) : null,
    lagBytes: src.ok && min !== undefined ? Math.max(0, Number(src.value.now - min)) : null,
    lagSeconds: known ? Math.max(...positions.map((p) => p!.behind ?? 0)) : null,
  };
}

/** WARNING when the follower is not running (the slot retains WAL meanwhile); lag and retained WAL graded by the thresholds. */
export function followerChecks(f: FollowerFacts, t: HealthThresholds): CheckResult[] {
  const mb = (n: number | null) => (n === null ? '?' : `${(n / 1024 / 1024).toFixed(1)} MB`);
  // while the initial copy runs there is no stream position yet: only the slot is graded
  const copying = f.state === 'copying';
  const status = worst([
    f.slotActive || copying ? 'ok' : 'warning',
    f.retainedBytes === null ? 'ok' : grade(f.retainedBytes, t.slotRetainedBytes),
    copying ? 'ok' : f.lagBytes === null ? 'unknown' : grade(f.lagBytes, t.lagBytes),
    copying ? 'ok' : f.lagSeconds === null ? 'unknown' : grade(f.lagSeconds, t.lagSeconds),
  ]);
  if (copying) return [{ check: 'follower', status, message: `online migration copying; the slot retains ${mb(f.retainedBytes)} of WAL on the monolith` }];
  const lag = `lag ${mb(f.lagBytes)}, ${f.lagSeconds === null ? '?' : `${f.lagSeconds.toFixed(1)} s`}; the slot retains ${mb(f.retainedBytes)} of WAL on the monolith`;
  const message = f.slotActive
    ? `online migration ${f.state}: ${lag}`
    : `online migration ${f.state}, but the follower is not running (run shardctl migrate --follow): ${lag}`;
  return [{ check: 'follower', status, message }];
}
