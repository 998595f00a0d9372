import type pg from 'pg';
import { lsnDiff, parseLsn } from '../db/lsn.js';

/** How far a streaming replica is behind its primary, as the throttle needs it. */
export interface ReplicaLag {
  bytes: number;
  /** seconds since the last replayed commit while there is WAL left to replay; 0 when caught up */
  seconds: number;
  paused: boolean;
}

/**
 * Bytes: the primary's current WAL position minus the replica's replay position (what it still has
 * to apply, received or not). Seconds count only while bytes remain: an idle primary's replica is
 * not behind however old its last replayed commit is.
 */
export async function replicaLag(primary: pg.ClientBase, replica: pg.ClientBase): Promise<ReplicaLag> {
  const p = await primary.query('SELECT pg_current_wal_lsn()::text AS now');
  const r = await replica.query(`SELECT pg_last_wal_replay_lsn()::text AS replay, pg_is_wal_replay_paused() AS paused,
                                        extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 AS age`);
  const x = r.rows[0] as { replay: string | null; paused: boolean; age: number | null };
  const bytes = Math.max(0, lsnDiff(parseLsn(p.rows[0].now), parseLsn(x.replay)) ?? 0);
  return { bytes, seconds: bytes > 0 ? Math.max(0, x.age ?? 0) : 0, paused: x.paused };
}
