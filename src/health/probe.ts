import type { Endpoint } from '../db/connect.js';
import { SERVER_FACTS_SQL } from './sql.js';
import { timedSession, type Timed } from './session.js';
import type { ActivityFacts, ServerFacts, SlotFacts, StandbyFacts } from './types.js';

/** One server, one round trip, bounded by `timeoutMs`. Never throws. */
export function probeServer(endpoint: Endpoint, timeoutMs: number): Promise<Timed<ServerFacts>> {
  return timedSession(endpoint, timeoutMs, async (c) => {
    const r = await c.query(SERVER_FACTS_SQL);
    return toFacts(r.rows[0] as Record<string, unknown>);
  });
}

const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

function toFacts(row: Record<string, unknown>): ServerFacts {
  return {
    inRecovery: row.in_recovery === true,
    serverVersion: String(row.server_version),
    connections: Number(row.connections),
    maxConnections: Number(row.max_connections),
    databaseBytes: Number(row.database_bytes),
    currentLsn: (row.current_lsn as string | null) ?? null,
    receiveLsn: (row.receive_lsn as string | null) ?? null,
    replayLsn: (row.replay_lsn as string | null) ?? null,
    replayAgeSeconds: num(row.replay_age_seconds),
    replayPaused: (row.replay_paused as boolean | null) ?? null,
    walReceiver: (row.wal_receiver as string | null) ?? null,
    walReceiverSlot: (row.wal_receiver_slot as string | null) ?? null,
    prepared: { count: Number(row.prepared_count ?? 0), oldestSeconds: num(row.prepared_oldest_seconds) },
    activity: activityOf(row.activity as Record<string, unknown> | null),
    slots: ((row.slots as Record<string, unknown>[] | null) ?? []).map(
      (s): SlotFacts => ({ name: String(s.name), type: String(s.type), active: s.active === true, retainedBytes: num(s.retainedBytes) }),
    ),
    standbys: ((row.standbys as Record<string, unknown>[] | null) ?? []).map(
      (s): StandbyFacts => ({
        applicationName: String(s.applicationName ?? ''),
        clientAddr: (s.clientAddr as string | null) ?? null,
        state: (s.state as string | null) ?? null,
        syncState: (s.syncState as string | null) ?? null,
        slot: (s.slot as string | null) ?? null,
        sentLagBytes: num(s.sentLagBytes),
        writeLagBytes: num(s.writeLagBytes),
        flushLagBytes: num(s.flushLagBytes),
        replayLagBytes: num(s.replayLagBytes),
        writeLagSeconds: num(s.writeLagSeconds),
        flushLagSeconds: num(s.flushLagSeconds),
        replayLagSeconds: num(s.replayLagSeconds),
      }),
    ),
  };
}

function activityOf(a: Record<string, unknown> | null): ActivityFacts | null {
  if (!a) return null;
  const n = (k: keyof ActivityFacts) => Number(a[k] ?? 0);
  return {
    commits: n('commits'),
    rollbacks: n('rollbacks'),
    rowsInserted: n('rowsInserted'),
    rowsUpdated: n('rowsUpdated'),
    rowsDeleted: n('rowsDeleted'),
    rowsFetched: n('rowsFetched'),
    rowsReturned: n('rowsReturned'),
  };
}
