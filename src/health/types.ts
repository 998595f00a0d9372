import type { HealthConfig, HealthLevels } from '../config/types.js';

/** Monitoring-convention states; `health`'s exit code is the code of the overall state. */
export type Status = 'ok' | 'warning' | 'critical' | 'unknown';

/** Which way a server is configured (not what it turned out to be: that is the role check). */
export type Role = 'primary' | 'replica';

export type CheckName = 'up' | 'query' | 'latency' | 'role' | 'replication' | 'lag' | 'slots' | 'connections' | 'capacity' | 'catalog' | 'prepared' | 'follower' | 'rollback-window';

export interface CheckResult {
  readonly check: CheckName;
  readonly status: Status;
  /** One human sentence, no password (URLs are redacted before they get here). */
  readonly message: string;
}

/** Every threshold `health` grades against (config.health without the timeout). */
export type HealthThresholds = Omit<HealthConfig, 'timeoutMs'>;
export type ThresholdOverrides = { readonly [K in keyof HealthThresholds]?: Partial<HealthLevels> };

export interface HealthOptions {
  /** Per-probe bound, connect and queries together (default: config.health.timeoutMs). */
  timeoutMs?: number;
  /** Flags over config over defaults: only the levels given here replace the config's. */
  thresholds?: ThresholdOverrides;
  /** Check the catalog's consistency too (default true). */
  catalog?: boolean;
}

export interface SlotFacts {
  readonly name: string;
  readonly type: string;
  readonly active: boolean;
  /** WAL between the server's current position and the slot's restart_lsn; null when it reserves none. */
  readonly retainedBytes: number | null;
}

/** One row of the primary's pg_stat_replication (its view of a standby). */
export interface StandbyFacts {
  readonly applicationName: string;
  readonly clientAddr: string | null;
  readonly state: string | null;
  readonly syncState: string | null;
  readonly slot: string | null;
  readonly sentLagBytes: number | null;
  readonly writeLagBytes: number | null;
  readonly flushLagBytes: number | null;
  readonly replayLagBytes: number | null;
  readonly writeLagSeconds: number | null;
  readonly flushLagSeconds: number | null;
  readonly replayLagSeconds: number | null;
}

/**
 * The database's cumulative counters from pg_stat_database (since the last stats reset), exported as
 * Prometheus counters so `rate()` gives writes and reads per second.
 */
export interface ActivityFacts {
  readonly commits: number;
  readonly rollbacks: number;
  readonly rowsInserted: number;
  readonly rowsUpdated: number;
  readonly rowsDeleted: number;
  /** rows fetched by index scans: reads that found rows */
  readonly rowsFetched: number;
  /** rows returned by scans (sequential scans count every row they visit) */
  readonly rowsReturned: number;
}

/** What one round trip to a server says about it. */
export interface ServerFacts {
  readonly inRecovery: boolean;
  readonly serverVersion: string;
  readonly connections: number;
  readonly maxConnections: number;
  readonly databaseBytes: number;
  /** pg_current_wal_lsn() (null in recovery). */
  readonly currentLsn: string | null;
  readonly receiveLsn: string | null;
  readonly replayLsn: string | null;
  /** now() − pg_last_xact_replay_timestamp(); null when nothing was replayed since start. */
  readonly replayAgeSeconds: number | null;
  readonly replayPaused: boolean | null;
  /** pg_stat_wal_receiver.status, null when there is no WAL receiver. */
  readonly walReceiver: string | null;
  readonly walReceiverSlot: string | null;
  /** null when pg_stat_database has no row for the database (statistics off) */
  readonly activity: ActivityFacts | null;
  /** Slots and standbys are read on servers not in recovery only. */
  readonly slots: readonly SlotFacts[];
  readonly standbys: readonly StandbyFacts[];
  /** Prepared transactions in this database and the age of the oldest (null when none). */
  readonly prepared: { readonly count: number; readonly oldestSeconds: number | null };
}

/** A replica's lag: seconds from its own view, bytes against its primary's current WAL position. */
export interface LagReport {
  readonly seconds: number | null;
  readonly bytes: number | null;
  readonly streaming: boolean;
  readonly paused: boolean;
  /** The matching row of the primary's pg_stat_replication, when one could be matched. */
  readonly primaryView?: StandbyFacts;
}

export interface ServerReport {
  readonly shard: string;
  readonly role: Role;
  /** The configured connection string, redacted. */
  readonly url: string;
  /** host:port, the `host` label of the metrics. */
  readonly host: string;
  readonly status: Status;
  readonly up: boolean;
  /** Why it is down (or why the health query failed). */
  readonly error?: string;
  readonly connectMs?: number;
  readonly queryMs?: number;
  readonly probeMs: number;
  readonly facts?: ServerFacts;
  readonly lag?: LagReport;
  readonly capacityBytes?: number;
  readonly checks: readonly CheckResult[];
}

export interface StrayPlacements {
  readonly shard: string;
  readonly units: number;
  readonly sample: readonly string[];
}

export interface MoveInFlight {
  readonly unit: string;
  readonly from: string;
  readonly to: string;
  readonly step: string;
  readonly since: string;
}

export interface CatalogReport {
  readonly url: string;
  readonly host: string;
  readonly status: Status;
  readonly reachable: boolean;
  /** false when the `shardctl` schema does not exist yet (nothing migrated): fine. */
  readonly present: boolean;
  readonly error?: string;
  readonly shards: readonly string[];
  /** In the catalog but not in the config. */
  readonly unknownShards: readonly string[];
  /** In the catalog and the config, but the primary did not answer. */
  readonly unreachableShards: readonly string[];
  readonly strayPlacements: readonly StrayPlacements[];
  readonly moves: readonly MoveInFlight[];
  readonly moveCount: number;
  /** A mutating run holds the catalog lock now (moves then are in flight, not leftovers). */
  readonly runInProgress: boolean;
  readonly checks: readonly CheckResult[];
}

/** A non-OK check, flattened for the one-line-per-problem report. */
export interface Problem {
  readonly status: Status;
  /** Absent for the catalog. */
  readonly shard?: string;
  readonly role: Role | 'catalog';
  readonly url: string;
  readonly check: CheckName;
  readonly message: string;
}

export interface HealthReport {
  readonly status: Status;
  readonly checkedAt: string;
  readonly durationMs: number;
  readonly timeoutMs: number;
  readonly thresholds: HealthThresholds;
  readonly shards: number;
  readonly servers: readonly ServerReport[];
  /** null when the catalog check was skipped. */
  readonly catalog: CatalogReport | null;
  /** h3: per shard, the mapped cells that are read-only or full (by design, not a problem) */
  readonly cellStatus: readonly { readonly shard: string; readonly readOnly: readonly string[]; readonly full: readonly string[] }[];
  /** Worst first. */
  readonly problems: readonly Problem[];
  /** whether copies and applies would pause now, per reason (throttled.ts); absent when the catalog was skipped */
  readonly throttled?: readonly ThrottledReport[];
}

export interface ThrottledReport {
  readonly reason: 'on-demand' | 'replica-lag' | 'source-load';
  readonly active: boolean;
}
