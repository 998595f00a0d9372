import { Counter, Gauge, Registry } from 'prom-client';
import { COUNTER_HELP, METRIC_HELP, type CounterName, type MetricName } from './metric-names.js';
import type { ActivityFacts } from './types.js';
import { STATUS_CODE } from './status.js';
import type { HealthReport, ServerReport } from './types.js';

const SERVER = ['shard', 'role', 'host'] as const;

/**
 * The report as a fresh prom-client registry (nothing leaks between runs, no process metrics mixed
 * in). Servers that are down export `shardctl_up 0`, their durations and checks only.
 */
export function healthRegistry(report: HealthReport): Registry {
  const registry = new Registry();
  const gauge = <L extends string>(name: MetricName, labelNames: readonly L[] = []) =>
    new Gauge<L>({ name, help: METRIC_HELP[name], labelNames, registers: [registry] });

  const up = gauge('shardctl_up', SERVER);
  const probe = gauge('shardctl_probe_duration_seconds', SERVER);
  const connectT = gauge('shardctl_connect_duration_seconds', SERVER);
  const queryT = gauge('shardctl_query_duration_seconds', SERVER);
  const recovery = gauge('shardctl_in_recovery', SERVER);
  const lagS = gauge('shardctl_replication_lag_seconds', SERVER);
  const lagB = gauge('shardctl_replication_lag_bytes', SERVER);
  const paused = gauge('shardctl_replication_replay_paused', SERVER);
  const streaming = gauge('shardctl_replication_streaming', SERVER);
  const standbys = gauge('shardctl_streaming_replicas', SERVER);
  const slotBytes = gauge('shardctl_replication_slot_retained_bytes', [...SERVER, 'slot']);
  const slotActive = gauge('shardctl_replication_slot_active', [...SERVER, 'slot']);
  const conns = gauge('shardctl_connections', SERVER);
  const maxConns = gauge('shardctl_max_connections', SERVER);
  const size = gauge('shardctl_database_size_bytes', SERVER);
  const capacity = gauge('shardctl_capacity_bytes', ['shard']);
  const check = gauge('shardctl_check_status', [...SERVER, 'check']);
  const overall = gauge('shardctl_health_status');
  const duration = gauge('shardctl_health_duration_seconds');
  const lastRun = gauge('shardctl_health_last_run_timestamp_seconds');
  const counters = Object.entries(ACTIVITY).map(
    ([name, fact]) => [new Counter({ name, help: COUNTER_HELP[name as CounterName], labelNames: SERVER, registers: [registry] }), fact] as const,
  );

  for (const s of report.servers) {
    const l = labels(s);
    up.set(l, s.up ? 1 : 0);
    probe.set(l, s.probeMs / 1000);
    for (const c of s.checks) check.set({ ...l, check: c.check }, STATUS_CODE[c.status]);
    if (s.capacityBytes !== undefined) capacity.set({ shard: s.shard }, s.capacityBytes);
    if (s.connectMs !== undefined) connectT.set(l, s.connectMs / 1000);
    if (s.queryMs !== undefined) queryT.set(l, s.queryMs / 1000);
    const f = s.facts;
    if (!f) continue;
    recovery.set(l, f.inRecovery ? 1 : 0);
    conns.set(l, f.connections);
    maxConns.set(l, f.maxConnections);
    size.set(l, f.databaseBytes);
    if (f.activity) for (const [counter, fact] of counters) counter.inc(l, f.activity[fact]);
    if (!f.inRecovery) standbys.set(l, f.standbys.filter((x) => x.state === 'streaming').length);
    for (const slot of f.slots) {
      slotActive.set({ ...l, slot: slot.name }, slot.active ? 1 : 0);
      if (slot.retainedBytes !== null) slotBytes.set({ ...l, slot: slot.name }, slot.retainedBytes);
    }
    if (s.lag) {
      if (s.lag.seconds !== null) lagS.set(l, s.lag.seconds);
      if (s.lag.bytes !== null) lagB.set(l, s.lag.bytes);
      paused.set(l, s.lag.paused ? 1 : 0);
      streaming.set(l, s.lag.streaming ? 1 : 0);
    }
  }
  const cat = report.catalog;
  if (cat) {
    // Registered only when the catalog was checked: an unlabelled gauge would otherwise export 0.
    const l = { shard: '', role: 'catalog', host: cat.host };
    for (const c of cat.checks) check.set({ ...l, check: c.check }, STATUS_CODE[c.status]);
    gauge('shardctl_catalog_consistent').set(cat.status === 'ok' ? 1 : 0);
    if (cat.reachable && cat.error === undefined) gauge('shardctl_catalog_moves_in_flight').set(cat.moveCount);
  }
  if (report.throttled) {
    const throttled = gauge('shardctl_throttled', ['reason']);
    for (const t of report.throttled) throttled.set({ reason: t.reason }, t.active ? 1 : 0);
  }
  overall.set(STATUS_CODE[report.status]);
  duration.set(report.durationMs / 1000);
  lastRun.set(Math.round(Date.parse(report.checkedAt) + report.durationMs) / 1000);
  return registry;
}


const labels = (s: ServerReport) => ({ shard: s.shard, role: s.role, host: s.host });

/** Which fact each counter carries. */
const ACTIVITY: Record<CounterName, keyof ActivityFacts> = {
  shardctl_database_commits_total: 'commits',
  shardctl_database_rollbacks_total: 'rollbacks',
  shardctl_database_rows_inserted_total: 'rowsInserted',
  shardctl_database_rows_updated_total: 'rowsUpdated',
  shardctl_database_rows_deleted_total: 'rowsDeleted',
  shardctl_database_rows_fetched_total: 'rowsFetched',
  shardctl_database_rows_returned_total: 'rowsReturned',
};
