import type { Config, ShardConfig } from '../config/types.js';
import { parseLsn } from '../db/lsn.js';
import { usageError } from '../errors.js';
import { redactUrl } from '../redact.js';
import { replicaLag } from '../health/checks.js';
import { probeServer } from '../health/probe.js';
import { timedSession } from '../health/session.js';
import type { LagReport, ServerFacts } from '../health/types.js';

/** What failover learns about one server of the shard. */
export interface ServerState {
  /** index in the shard's `replicas` (undefined: the primary) */
  index?: number;
  url: string;
  /** redacted */
  shown: string;
  reachable: boolean;
  reason?: string;
  inRecovery?: boolean;
  /** the timeline the server is on (a standby: the one it receives) */
  timeline?: number;
  replayLsn?: string | null;
  lag?: LagReport;
}

export interface ShardState {
  shard: ShardConfig;
  primary: ServerState;
  replicas: ServerState[];
}

const TIMELINE_SQL = `SELECT coalesce((SELECT received_tli FROM pg_stat_wal_receiver LIMIT 1), (SELECT timeline_id FROM pg_control_checkpoint()))::int AS tli`;

/** Probes the shard's primary and every replica at once, each bounded by the health timeout. Never throws for a dead server. */
export async function inspectShard(config: Config, shardId: string): Promise<ShardState> {
  const shard = config.shards.find((s) => s.id === shardId);
  if (!shard) throw usageError(`${config.file}: no shard ${shardId} (shards: ${config.shards.map((s) => s.id).join(', ')})`);
  const timeout = config.health.timeoutMs;
  const probe = async (url: string, label: string, index?: number): Promise<ServerState & { facts?: ServerFacts }> => {
    const endpoint = { label, url };
    const [facts, tli] = await Promise.all([
      probeServer(endpoint, timeout),
      timedSession(endpoint, timeout, async (c) => Number((await c.query(TIMELINE_SQL)).rows[0].tli)),
    ]);
    const base = { index, url, shown: redactUrl(url) };
    if (!facts.ok) return { ...base, reachable: false, reason: facts.reason };
    const f = facts.value;
    return { ...base, reachable: true, inRecovery: f.inRecovery, timeline: tli.ok ? tli.value : undefined, replayLsn: f.replayLsn, facts: f };
  };
  const [primary, ...replicas] = await Promise.all([
    probe(shard.primary, `shard ${shard.id} primary`),
    ...shard.replicas.map((url, i) => probe(url, `shard ${shard.id} replica ${i + 1}`, i)),
  ]);
  const primaryFacts = primary!.reachable && primary!.inRecovery === false ? primary!.facts : undefined;
  for (const r of replicas) if (r.facts?.inRecovery) r.lag = replicaLag(r.facts, primaryFacts, shard.replicas.length);
  const strip = ({ facts: _f, ...s }: ServerState & { facts?: ServerFacts }): ServerState => s;
  return { shard, primary: strip(primary!), replicas: replicas.map(strip) };
}

/**
 * The replica to promote: the one `to` names (its URL as configured or redacted, `host:port`, or its
 * 1-based position), else the reachable standby that has replayed the most WAL.
 */
export function chooseCandidate(state: ShardState, to?: string): ServerState {
  const id = state.shard.id;
  if (state.replicas.length === 0) throw usageError(`shard ${id} has no replicas to fail over to`, 'add one under replicas: in the config');
  if (to !== undefined) {
    const hit = state.replicas.find((r, i) => r.url === to || r.shown === to || hostPort(r.url) === to || String(i + 1) === to);
    if (!hit) throw usageError(`shard ${id} has no replica ${redactUrl(to)} (replicas: ${state.replicas.map((r) => r.shown).join(', ')})`);
    return hit;
  }
  const ready = state.replicas.filter((r) => r.reachable);
  if (ready.length === 0) return state.replicas[0]!; // the checks will say why it cannot be promoted
  return ready.sort((a, b) => byPosition(b.replayLsn, a.replayLsn) || (a.index ?? 0) - (b.index ?? 0))[0]!;
}

function hostPort(url: string): string | undefined {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || '5432'}`;
  } catch {
    return undefined;
  }
}

/** Orders two replay positions as reported (text; none sorts before any): negative when `a` is behind `b`. */
function byPosition(a: string | null | undefined, b: string | null | undefined): number {
  const x = parseLsn(a) ?? -1n;
  const y = parseLsn(b) ?? -1n;
  return x < y ? -1 : x > y ? 1 : 0;
}
