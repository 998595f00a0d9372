/**
 * Everything `health` asks a server, in ONE round trip (latency is measured on it). Functions that
 * fail outside recovery (pg_is_wal_replay_paused) or inside it (pg_current_wal_lsn) are guarded by
 * CASE, which PostgreSQL evaluates lazily for volatile functions. Needs PostgreSQL 10 or later;
 * slot and standby details need superuser or pg_monitor (unprivileged roles read NULLs there).
 */
export const SERVER_FACTS_SQL = `
SELECT
  pg_is_in_recovery() AS in_recovery,
  current_setting('server_version') AS server_version,
  current_setting('max_connections')::int AS max_connections,
  (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int AS connections,
  pg_database_size(current_database())::float8 AS database_bytes,
  CASE WHEN NOT pg_is_in_recovery() THEN pg_current_wal_lsn()::text END AS current_lsn,
  pg_last_wal_receive_lsn()::text AS receive_lsn,
  pg_last_wal_replay_lsn()::text AS replay_lsn,
  extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8 AS replay_age_seconds,
  CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() END AS replay_paused,
  (SELECT status FROM pg_stat_wal_receiver LIMIT 1) AS wal_receiver,
  (SELECT json_build_object('commits', xact_commit, 'rollbacks', xact_rollback, 'rowsInserted', tup_inserted,
            'rowsUpdated', tup_updated, 'rowsDeleted', tup_deleted, 'rowsFetched', tup_fetched, 'rowsReturned', tup_returned)
     FROM pg_stat_database WHERE datname = current_database()) AS activity,
  (SELECT slot_name FROM pg_stat_wal_receiver LIMIT 1) AS wal_receiver_slot,
  (SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database())::int AS prepared_count,
  (SELECT extract(epoch FROM clock_timestamp() - min(prepared)) FROM pg_prepared_xacts WHERE database = current_database())::float8 AS prepared_oldest_seconds,
  CASE WHEN NOT pg_is_in_recovery() THEN (
    SELECT coalesce(json_agg(json_build_object(
             'name', slot_name, 'type', slot_type, 'active', active,
             'retainedBytes', pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)) ORDER BY slot_name), '[]')
      FROM pg_replication_slots) END AS slots,
  CASE WHEN NOT pg_is_in_recovery() THEN (
    SELECT coalesce(json_agg(json_build_object(
             'applicationName', r.application_name, 'clientAddr', host(r.client_addr),
             'state', r.state, 'syncState', r.sync_state, 'slot', s.slot_name,
             'sentLagBytes', pg_wal_lsn_diff(pg_current_wal_lsn(), r.sent_lsn),
             'writeLagBytes', pg_wal_lsn_diff(pg_current_wal_lsn(), r.write_lsn),
             'flushLagBytes', pg_wal_lsn_diff(pg_current_wal_lsn(), r.flush_lsn),
             'replayLagBytes', pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn),
             'writeLagSeconds', extract(epoch FROM r.write_lag),
             'flushLagSeconds', extract(epoch FROM r.flush_lag),
             'replayLagSeconds', extract(epoch FROM r.replay_lag)) ORDER BY r.application_name), '[]')
      FROM pg_stat_replication r
      LEFT JOIN pg_replication_slots s ON s.active_pid = r.pid) END AS standbys`;
