import type { Config } from '../config/types.js';
import { withClient } from '../db/connect.js';
import { shardEndpoint, sourceEndpoint } from '../db/endpoints.js';
import { blockedError } from '../errors.js';
import { lsn } from '../db/lsn.js';
import { MIGRATION_STREAM } from '../stream/names.js';

/** How far behind the follower may be when cutover fences the monolith (its lag is the outage's floor). */
export interface LagBound {
  /** seconds since the newest monolith commit every shard holds; default config.health.lagSeconds.warning */
  seconds?: number;
  /** bytes of monolith WAL the slowest shard has not committed; default config.health.lagBytes.warning */
  bytes?: number;
}

/**
 * Refuses (exit 3, before any fence) when the follower is further behind than the bound: inside the
 * fence the monolith refuses writes until the shards have caught up, so a lagging follower would
 * turn its lag into a write outage, or into a timeout that lifts the fence again. Unknown lag
 * (a shard or the monolith not answering) is refused too: it cannot be proven small.
 */
export async function checkFollowerLag(config: Config, bound: LagBound = {}): Promise<{ seconds: number; bytes: number }> {
  const maxSeconds = bound.seconds ?? config.health.lagSeconds.warning;
  const maxBytes = bound.bytes ?? config.health.lagBytes.warning;
  const f = await followerLag(config);
  if (!f) throw blockedError('the follower has no stream position on every shard yet; not fencing', { hint: 'wait until migrate --follow reports that it follows, then run cutover again' });
  const over = [
    f.seconds > maxSeconds ? `${f.seconds.toFixed(1)} s behind (bound ${maxSeconds} s)` : '',
    f.bytes > maxBytes ? `${mb(f.bytes)} behind (bound ${mb(maxBytes)})` : '',
  ].filter(Boolean);
  if (over.length) {
    throw blockedError(`the follower is ${over.join(' and ')}; not fencing: the monolith keeps taking writes`, {
      hint: 'let migrate --follow catch up (shardctl health shows its lag), then run cutover again; --max-lag / --max-lag-bytes raise the bound',
    });
  }
  return f;
}

/**
 * Bytes: the monolith's WAL position minus the slowest shard's committed position. Seconds: on the
 * slowest shard, the age of the newest monolith commit it holds, or, before the follower applied
 * any (source_time still empty), the age of the position it started from. The follower's heartbeat
 * commits every second while it runs, so a follower that stalls ages here even on an idle monolith.
 */
async function followerLag(config: Config): Promise<{ seconds: number; bytes: number } | null> {
  const slot = MIGRATION_STREAM.slot;
  const now = await withClient(sourceEndpoint(config), async (c) => lsn((await c.query('SELECT pg_current_wal_lsn()::text AS l')).rows[0].l));
  const at = await Promise.all(
    config.shards.map((s) =>
      withClient(shardEndpoint(config, s.id), async (c) => {
        const r = await c.query(
          `SELECT lsn::text AS lsn, extract(epoch FROM clock_timestamp() - coalesce(source_time, applied_at))::float8 AS age
             FROM shardctl.follow_position WHERE slot = $1`,
          [slot],
        );
        const p = r.rows[0] as { lsn: string; age: number } | undefined;
        return p && { lsn: lsn(p.lsn), age: p.age };
      }),
    ),
  );
  if (at.some((p) => p === undefined)) return null;
  const min = at.reduce((m, p) => (p!.lsn < m ? p!.lsn : m), now);
  return { bytes: Math.max(0, Number(now - min)), seconds: Math.max(0, ...at.map((p) => p!.age)) };
}

const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`;
