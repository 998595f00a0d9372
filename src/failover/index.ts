import type { Config } from '../config/types.js';
import { lsnText, type Lsn } from '../db/lsn.js';
import { withRun } from '../catalog/run.js';
import { withClient } from '../db/connect.js';
import { blockedError } from '../errors.js';
import { health } from '../health/health.js';
import type { HealthReport } from '../health/types.js';
import { editConfigFile, promoteReplica } from '../config/edit-file.js';
import { syncTopology } from '../catalog/topology.js';
import { currentLsn, fenceOldPrimary, liftServerFence, type ServerFence } from '../fence/server-fence.js';
import { chooseCandidate, inspectShard, type ServerState } from './inspect.js';

export interface FailoverOptions {
  /** the replica to promote: its URL, `host:port` or 1-based position (default: the most advanced) */
  to?: string;
  /** carry it out (default: only show the plan) */
  apply?: boolean;
  /** promote even when the replica is behind more than the limits */
  force?: boolean;
  /** refuse above this replay lag (default: the health lag warning level, 10 s) */
  maxLagSeconds?: number;
  /** refuse above this many bytes of WAL not replayed (default: the health lag-bytes warning level) */
  maxLagBytes?: number;
  /** how long to wait for the promotion (default 60 s) */
  promoteTimeoutSeconds?: number;
  /** how long to wait for the replica to replay up to the old primary's fence (default: promoteTimeoutSeconds) */
  replayTimeoutSeconds?: number;
}

/** A server as reported: never its connection string with a password. */
export type Shown = Omit<ServerState, 'url'>;
const shown = ({ url: _u, ...s }: ServerState): Shown => s;

export interface FailoverResult {
  shard: string;
  applied: boolean;
  /** the replica promoted (or to promote); `shown` is its redacted URL */
  candidate: Shown;
  oldPrimary: Shown;
  /** reasons it may not go ahead; empty when it may (or --force overrode them, see `forced`) */
  refusals: string[];
  forced: boolean;
  /** what it does, in order (the plan, or what was done) */
  steps: string[];
  /** the shard's other replicas: they still follow the old primary and need re-pointing (redacted) */
  repoint: string[];
  fence?: ServerFence;
  /** the old primary answered: whether the replica replayed everything it had written before promotion */
  caughtUp?: boolean;
  /** the config as written, with the promoted server as the shard's primary */
  config?: Config;
  health?: HealthReport;
}

/**
 * Fails a shard over to one of its streaming replicas: checks the replica (reachable, a standby, on
 * the primary's timeline, lag within limits), shows the plan, and with `apply` fences the old primary
 * if it still answers, promotes the replica (pg_promote), writes it as the shard's primary in the
 * config file (comments kept, atomic) and the catalog (routers following it switch), and re-runs
 * health. A rerun after a crash continues: a replica already promoted is not promoted again.
 *
 * @example await failover(loadConfig('shardctl.yaml'), 's0', { apply: true });
 */
export async function failover(config: Config, shardId: string, opts: FailoverOptions = {}): Promise<FailoverResult> {
  const state = await inspectShard(config, shardId);
  const candidate = chooseCandidate(state, opts.to);
  const old = state.primary;
  const refusals = checkCandidate(candidate, old, {
    seconds: opts.maxLagSeconds ?? config.health.lagSeconds.warning,
    bytes: opts.maxLagBytes ?? config.health.lagBytes.warning,
  });
  const blocking = refusals.filter((r) => !r.startsWith('!'));
  const hard = refusals.filter((r) => r.startsWith('!')).map((r) => r.slice(1));
  const repoint = state.replicas.filter((r) => r !== candidate).map((r) => r.shown);
  const promoted = candidate.reachable && candidate.inRecovery === false;
  const steps = [
    old.reachable
      ? `fence the old primary ${old.shown} (it still answers): configured tables refuse writes, its sessions are ended`
      : `the old primary ${old.shown} is down (${old.reason}): it cannot be fenced; keep it down until it is rebuilt as a replica`,
    promoted ? `${candidate.shown} is already promoted (a previous run): not promoted again` : `promote ${candidate.shown} (pg_promote)${describeLag(candidate)}`,
    `write ${candidate.shown} as shard ${shardId}'s primary in ${config.file} and the catalog (routers following the catalog switch); the old primary leaves the config`,
    repoint.length ? `re-point ${repoint.join(', ')} at the new primary (primary_conninfo), by hand` : 'no other replica to re-point',
    're-run health',
  ];
  const result: FailoverResult = {
    shard: shardId, applied: false, candidate: shown(candidate), oldPrimary: shown(old), refusals: [...hard, ...blocking], forced: false, steps, repoint,
  };
  if (!opts.apply) return result;
  if (hard.length) throw blockedError(`shard ${shardId}: cannot fail over to ${candidate.shown}: ${hard.join('; ')}`);
  if (blocking.length && !opts.force) {
    throw blockedError(`shard ${shardId}: refusing to fail over to ${candidate.shown}: ${blocking.join('; ')}`, {
      hint: 'wait for the replica to catch up, choose another with --to, or accept losing the difference with --force',
    });
  }
  result.forced = blocking.length > 0;

  const spec = {
    command: 'failover',
    args: { shard: shardId, to: candidate.shown, force: Boolean(opts.force) },
    lock: 'run' as const,
    outcome: (r: FailoverResult) => ({ status: 'ok' as const, summary: { shard: shardId, promoted: candidate.shown, fenced: Boolean(r.fence), health: r.health?.status } }),
  };
  return withRun(config.catalog, spec, async ({ catalog }) => {
    if (old.reachable) {
      // Fence first, then let the replica replay up to the fence: a switchover loses no acknowledged write.
      const fenced = await withClient({ label: `shard ${shardId} old primary`, url: old.url }, async (c) => {
        const fence = await fenceOldPrimary(c, config, shardId, candidate.shown);
        return { fence, lsn: await currentLsn(c) };
      });
      result.fence = fenced.fence;
      if (!promoted) {
        const wait = opts.replayTimeoutSeconds ?? opts.promoteTimeoutSeconds ?? 60;
        result.caughtUp = await replayedTo(candidate, shardId, fenced.lsn, wait);
        if (!result.caughtUp) await refuseUnlessForced(result, opts, config, old, fenced.lsn, wait);
      }
    }
    if (!promoted) await promote(candidate, shardId, opts.promoteTimeoutSeconds ?? 60);
    // The fence reached the replica through WAL; on the new primary it must go.
    await withClient({ label: `shard ${shardId} new primary`, url: candidate.url }, (c) => liftServerFence(c, config));
    const next = editConfigFile(config.file, promoteReplica(shardId, candidate.index!));
    await syncTopology(catalog.client, next);
    result.config = next;
    result.applied = true;
    result.health = await health(next);
    return result;
  });
}

/**
 * The replica did not replay up to the old primary's fence in time: promoting it loses the writes
 * the old primary acknowledged after its replay position. Refused (exit 3) unless `force`, with the
 * old primary's fence lifted so it keeps serving as before; `force` goes ahead and says so in
 * `refusals`.
 */
async function refuseUnlessForced(result: FailoverResult, opts: FailoverOptions, config: Config, old: ServerState, lsn: Lsn, seconds: number): Promise<void> {
  const why = `the replica had not replayed the old primary's WAL up to its fence (${lsnText(lsn)}) after ${seconds} s: promoting it would lose the writes after its replay position`;
  if (opts.force) {
    result.refusals.push(why);
    result.forced = true;
    return;
  }
  await withClient({ label: `shard ${result.shard} old primary`, url: old.url }, (c) => liftServerFence(c, config));
  throw blockedError(`shard ${result.shard}: refusing to fail over to ${result.candidate.shown}: ${why}; the old primary's fence is lifted and nothing else changed`, {
    hint: 'find out why the replica does not replay (pg_stat_wal_receiver; replay paused?), then run failover again, or accept losing the difference with --force',
  });
}

/** Refusals; those starting with `!` cannot be forced (there is nothing to promote). */
function checkCandidate(c: ServerState, old: ServerState, max: { seconds: number; bytes: number }): string[] {
  if (!c.reachable) return [`!the replica does not answer (${c.reason})`];
  if (c.inRecovery === false) return []; // promoted by an earlier run: continue from there
  const out: string[] = [];
  if (old.reachable && old.inRecovery === false && c.timeline !== undefined && old.timeline !== undefined && c.timeline !== old.timeline) {
    out.push(`!the replica is on timeline ${c.timeline}, the primary on ${old.timeline}: it does not follow this primary`);
  }
  const lag = c.lag;
  if (!lag || (lag.seconds === null && lag.bytes === null)) out.push('its replication lag is unknown');
  if (lag?.seconds !== null && lag?.seconds !== undefined && lag.seconds > max.seconds) out.push(`it is ${lag.seconds.toFixed(1)} s behind (limit ${max.seconds} s)`);
  if (lag?.bytes !== null && lag?.bytes !== undefined && lag.bytes > max.bytes) out.push(`${lag.bytes} bytes of WAL are not replayed on it (limit ${max.bytes})`);
  return out;
}

function describeLag(c: ServerState): string {
  const parts = [
    c.timeline !== undefined ? `timeline ${c.timeline}` : undefined,
    c.lag?.seconds != null ? `lag ${c.lag.seconds.toFixed(1)} s` : undefined,
    c.lag?.bytes != null ? `${c.lag.bytes} bytes not replayed` : undefined,
  ].filter(Boolean);
  return parts.length ? ` — ${parts.join(', ')}` : '';
}

/**
 * Asks for the promotion and polls until the server left recovery. Not pg_promote(wait => true):
 * the replay it waits for may have to cancel that very statement (a recovery conflict with its
 * snapshot, after max_standby_streaming_delay), as a replica promoted with WAL still to replay did.
 */
async function promote(c: ServerState, shard: string, timeoutSeconds: number): Promise<void> {
  await withClient({ label: `shard ${shard} replica ${c.index! + 1}`, url: c.url }, async (client) => {
    await client.query('SELECT pg_promote(false)');
    const deadline = Date.now() + timeoutSeconds * 1000;
    while ((await client.query('SELECT pg_is_in_recovery() AS r')).rows[0].r) {
      if (Date.now() > deadline) throw blockedError(`shard ${shard}: ${c.shown} did not finish promoting within ${timeoutSeconds} s`, { hint: 'run the same command again once it has' });
      await new Promise((res) => setTimeout(res, 50));
    }
  });
}

/** Waits until the replica has replayed `lsn`; false when it has not within the timeout (promotion goes ahead: the lag check passed). */
async function replayedTo(c: ServerState, shard: string, lsn: Lsn, timeoutSeconds: number): Promise<boolean> {
  return withClient({ label: `shard ${shard} replica ${c.index! + 1}`, url: c.url }, async (client) => {
    const deadline = Date.now() + timeoutSeconds * 1000;
    for (;;) {
      const r = await client.query('SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok', [lsnText(lsn)]);
      if (r.rows[0].ok) return true;
      if (Date.now() > deadline) return false;
      await new Promise((res) => setTimeout(res, 50));
    }
  });
}
