/**
 * The report as Prometheus metrics, named by Prometheus conventions: a `shardctl_` prefix, base
 * units in the name (seconds, bytes, ratio), labels `shard`, `role` (as configured) and `host`
 * (host:port, never credentials). Every metric is a gauge: a cron run is one sample.
 */
export const METRIC_HELP = {
  shardctl_up: 'Whether the server accepted a connection and answered (1) or not (0).',
  shardctl_probe_duration_seconds: 'Time the whole probe of the server took, connect and query.',
  shardctl_connect_duration_seconds: 'Time to connect and authenticate.',
  shardctl_query_duration_seconds: 'Time of the health query round trip.',
  shardctl_in_recovery: 'Whether the server is in recovery (a standby): 1 or 0.',
  shardctl_replication_lag_seconds: 'Replica replay lag in seconds (0 when everything received is replayed).',
  shardctl_replication_lag_bytes: "Bytes of WAL between the primary's current position and the replica's replay position.",
  shardctl_replication_replay_paused: 'Whether WAL replay is paused on the replica: 1 or 0.',
  shardctl_replication_streaming: 'Whether the replica is streaming from its primary: 1 or 0.',
  shardctl_streaming_replicas: 'Standbys streaming from this server (pg_stat_replication rows in state streaming).',
  shardctl_replication_slot_retained_bytes: 'WAL retained by a replication slot (current position minus restart_lsn).',
  shardctl_replication_slot_active: 'Whether a replication slot has a consumer: 1 or 0.',
  shardctl_connections: 'Client backends connected to the server.',
  shardctl_max_connections: 'The server max_connections setting.',
  shardctl_database_size_bytes: 'Size of the configured database (pg_database_size).',
  shardctl_capacity_bytes: "The shard's configured capacity.",
  shardctl_check_status: 'Status of one health check: 0 ok, 1 warning, 2 critical, 3 unknown.',
  shardctl_catalog_consistent: 'Whether the catalog is consistent with the config and the fleet: 1 or 0.',
  shardctl_catalog_moves_in_flight: 'Units fenced or half-moved (rows in shardctl.moves).',
  shardctl_throttled: 'Whether copies and applies pause now for this reason (on-demand: shardctl throttle on; replica-lag: a shard replica past the lag warning; source-load: the monolith\'s sessions in a query past the connections warning): 1 or 0.',
  shardctl_health_status: 'Overall result of the health run: 0 ok, 1 warning, 2 critical, 3 unknown.',
  shardctl_health_duration_seconds: 'Time the whole health run took.',
  shardctl_health_last_run_timestamp_seconds: 'When the health run finished (Unix time), to alert on a stale textfile.',
} as const;

export type MetricName = keyof typeof METRIC_HELP;

/**
 * pg_stat_database's cumulative counters per server, typed `counter` so `rate()` gives commits,
 * writes and reads per second (the location design's "writes/reads per shard per second"). They
 * restart from 0 when the server's statistics are reset, which `rate()` handles as a counter reset.
 */
export const COUNTER_HELP = {
  shardctl_database_commits_total: 'Transactions committed in the database (pg_stat_database.xact_commit).',
  shardctl_database_rollbacks_total: 'Transactions rolled back in the database (pg_stat_database.xact_rollback).',
  shardctl_database_rows_inserted_total: 'Rows inserted (pg_stat_database.tup_inserted).',
  shardctl_database_rows_updated_total: 'Rows updated (pg_stat_database.tup_updated).',
  shardctl_database_rows_deleted_total: 'Rows deleted (pg_stat_database.tup_deleted).',
  shardctl_database_rows_fetched_total: 'Rows fetched by index scans: reads (pg_stat_database.tup_fetched).',
  shardctl_database_rows_returned_total: 'Rows returned by scans, sequential scans counting every row visited (pg_stat_database.tup_returned).',
} as const;

export type CounterName = keyof typeof COUNTER_HELP;
