import type { ShardConfig } from '../config/types.js';
import { redactUrl } from '../redact.js';
import { bytes, hostPort, ms, pct, seconds } from './format.js';
import { lsnDiff, parseLsn } from '../db/lsn.js';
import type { Timed } from './session.js';
import { grade, worst, worstOf } from './status.js';
import type { CheckResult, HealthThresholds, LagReport, Role, ServerFacts, ServerReport, Status } from './types.js';

export interface Target {
  readonly shard: ShardConfig;
  readonly role: Role;
  readonly url: string;
}

/**
 * Grades one probed server. `primary` is the facts of its shard's primary (for a replica's lag in
 * bytes against the primary's current WAL position), when the primary answered.
 */
export function evaluateServer(
  target: Target,
  outcome: Timed<ServerFacts>,
  primary: ServerFacts | undefined,
  t: HealthThresholds,
): ServerReport {
  const base = {
    shard: target.shard.id,
    role: target.role,
    url: redactUrl(target.url),
    host: hostPort(target.url),
    probeMs: outcome.totalMs,
    capacityBytes: target.role === 'primary' ? target.shard.capacityBytes : undefined,
  };
  if (!outcome.ok) {
    if (outcome.connected && !outcome.timedOut) {
      // It took the connection, so it is up; what it is like cannot be told.
      const checks: CheckResult[] = [
        { check: 'up', status: 'ok', message: 'up' },
        { check: 'query', status: 'unknown', message: `connected, but the health query failed: ${outcome.reason}` },
      ];
      return { ...base, status: worstOf(checks), up: true, error: outcome.reason, connectMs: outcome.connectMs, checks };
    }
    // A replica down leaves the shard serving; its primary down does not.
    const status: Status = target.role === 'primary' ? 'critical' : 'warning';
    const checks: CheckResult[] = [{ check: 'up', status, message: `down (${outcome.reason})` }];
    return { ...base, status, up: false, error: outcome.reason, checks };
  }
  const f = outcome.value;
  const lag = target.role === 'replica' && f.inRecovery ? replicaLag(f, primary, target.shard.replicas.length) : undefined;
  const checks: CheckResult[] = [
    { check: 'up', status: 'ok', message: 'up' },
    latency(outcome.connectMs, outcome.queryMs, t),
    role(target.role, f),
    ...(lag ? [replication(f, primary === undefined), lagCheck(lag, t)] : []),
    ...(f.inRecovery ? [] : [slots(f, t), prepared(f, t)]),
    connections(f, t),
    ...(target.role === 'primary' ? [capacity(f.databaseBytes, base.capacityBytes, t)] : []),
  ];
  return {
    ...base,
    status: worstOf(checks),
    up: true,
    connectMs: outcome.connectMs,
    queryMs: outcome.queryMs,
    facts: f,
    lag,
    checks,
  };
}

function latency(connectMs: number, queryMs: number, t: HealthThresholds): CheckResult {
  const total = connectMs + queryMs;
  return { check: 'latency', status: grade(total, t.latencyMs), message: `responded in ${ms(total)} (connect ${ms(connectMs)}, query ${ms(queryMs)})` };
}

function role(configured: Role, f: ServerFacts): CheckResult {
  if (configured === 'primary' && f.inRecovery) {
    return { check: 'role', status: 'critical', message: 'configured as the primary but is in recovery (a standby): writes fail here' };
  }
  if (configured === 'replica' && !f.inRecovery) {
    return { check: 'role', status: 'critical', message: 'configured as a replica but is not in recovery (promoted?): risk of split brain' };
  }
  return { check: 'role', status: 'ok', message: f.inRecovery ? 'in recovery, as a replica should be' : 'accepts writes, as a primary should' };
}

/** Seconds from the replica's own view, bytes against its primary's current position. */
export function replicaLag(f: ServerFacts, primary: ServerFacts | undefined, configuredReplicas: number): LagReport {
  const streaming = f.walReceiver === 'streaming';
  const paused = f.replayPaused === true;
  const bytesLag = primary?.currentLsn ? lsnDiff(parseLsn(primary.currentLsn), parseLsn(f.replayLsn)) : lsnDiff(parseLsn(f.receiveLsn), parseLsn(f.replayLsn));
  // The last replayed commit's timestamp ages on an idle primary without any real lag, so it only
  // counts while WAL is waiting to be replayed: caught up (nothing received is unreplayed, or no
  // byte behind the primary) is 0 seconds.
  let secondsLag: number | null;
  if (bytesLag === 0) secondsLag = 0;
  else if (streaming && !paused && f.receiveLsn !== null && f.receiveLsn === f.replayLsn) secondsLag = 0;
  else secondsLag = f.replayAgeSeconds === null ? null : Math.max(0, f.replayAgeSeconds);
  const standbys = primary?.standbys ?? [];
  const primaryView =
    standbys.find((s) => s.slot !== null && s.slot === f.walReceiverSlot) ??
    (standbys.length === 1 && configuredReplicas === 1 ? standbys[0] : undefined);
  return { seconds: secondsLag, bytes: bytesLag, streaming, paused, ...(primaryView ? { primaryView } : {}) };
}

function replication(f: ServerFacts, primaryDown: boolean): CheckResult {
  if (f.walReceiver === 'streaming') return { check: 'replication', status: 'ok', message: 'streaming from its primary' };
  const why = `WAL receiver: ${f.walReceiver ?? 'none'}${primaryDown ? '; its primary did not answer either' : ''}`;
  return { check: 'replication', status: 'warning', message: `not streaming from its primary (${why})` };
}

function lagCheck(lag: LagReport, t: HealthThresholds): CheckResult {
  if (lag.seconds === null && lag.bytes === null) return { check: 'lag', status: 'unknown', message: 'replication lag unknown' };
  const status = worst([
    lag.seconds === null ? 'ok' : grade(lag.seconds, t.lagSeconds),
    lag.bytes === null ? 'ok' : grade(lag.bytes, t.lagBytes),
  ]);
  const parts = [
    lag.seconds === null ? 'lag ? s' : `lag ${seconds(lag.seconds)}`,
    lag.bytes === null ? '? bytes behind the primary' : `${bytes(lag.bytes)} behind the primary`,
  ];
  return { check: 'lag', status, message: `${parts.join(', ')}${lag.paused ? ' (replay paused)' : ''}` };
}

function slots(f: ServerFacts, t: HealthThresholds): CheckResult {
  if (f.slots.length === 0) return { check: 'slots', status: 'ok', message: 'no replication slots' };
  const graded = f.slots.map((s) => ({ s, status: s.retainedBytes === null ? ('ok' as Status) : grade(s.retainedBytes, t.slotRetainedBytes) }));
  const top = [...graded].sort((a, b) => (b.s.retainedBytes ?? -1) - (a.s.retainedBytes ?? -1))[0]!;
  const status = worst(graded.map((g) => g.status));
  const which = `slot ${top.s.name}${top.s.active ? '' : ' (inactive)'}`;
  const message = status === 'ok'
    ? `${f.slots.length} replication slot${f.slots.length > 1 ? 's' : ''}, at most ${bytes(top.s.retainedBytes ?? 0)} of WAL retained`
    : `${which} retains ${bytes(top.s.retainedBytes ?? 0)} of WAL`;
  return { check: 'slots', status, message };
}

function connections(f: ServerFacts, t: HealthThresholds): CheckResult {
  const ratio = f.maxConnections > 0 ? f.connections / f.maxConnections : 0;
  return { check: 'connections', status: grade(ratio, t.connections), message: `${f.connections}/${f.maxConnections} connections (${pct(ratio)})` };
}

/** Two-phase transactions left prepared (a coordinator died): they hold locks and block vacuum. */
function prepared(f: ServerFacts, t: HealthThresholds): CheckResult {
  const { count, oldestSeconds } = f.prepared;
  if (!count || oldestSeconds === null) return { check: 'prepared', status: 'ok', message: 'no prepared transaction' };
  return {
    check: 'prepared',
    status: grade(oldestSeconds, t.preparedSeconds),
    message: `${count} prepared transaction(s), the oldest ${seconds(oldestSeconds)} old (shardctl resolve finishes them)`,
  };
}

function capacity(size: number, cap: number | undefined, t: HealthThresholds): CheckResult {
  if (cap === undefined) {
    // Not a fault (exit codes stay as they were), but the storage alert must not look as if it passed.
    return {
      check: 'capacity',
      status: 'ok',
      message: `database ${bytes(size)}; no capacity configured, so the ${pct(t.capacity.warning)} storage alert is off (set capacity: for this shard)`,
    };
  }
  const ratio = cap > 0 ? size / cap : Infinity;
  return { check: 'capacity', status: grade(ratio, t.capacity), message: `database ${bytes(size)} of ${bytes(cap)} capacity (${pct(ratio)})` };
}
