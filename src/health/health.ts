import type { Config } from '../config/types.js';
import { restrictedByShard } from '../config/capacity.js';
import { evaluateCatalog, readCatalog } from './catalog.js';
import { followerChecks, readFollower } from './follower.js';
import { readReverse, reverseChecks } from './reverse.js';
import { evaluateServer, type Target } from './checks.js';
import { probeServer } from './probe.js';
import { byRank, worst } from './status.js';
import { resolveThresholds } from './thresholds.js';
import { readThrottled } from './throttled.js';
import type { HealthOptions, HealthReport, Problem } from './types.js';

/**
 * Checks every primary and replica of every shard, all at once, each probe bounded by the timeout
 * (so the run takes about the slowest probe, at most the timeout, however many hosts are dead),
 * plus the catalog's consistency. Never throws for an unhealthy or unreachable fleet: that is the
 * report; `shardctl health` exits by `report.status` (commands/exit-codes.ts).
 *
 * @example
 *   const report = await health(loadConfig('shardctl.yaml'), { thresholds: { lagSeconds: { warning: 5 } } });
 *   if (report.status !== 'ok') for (const p of report.problems) console.log(p.status, p.shard, p.message);
 */
export async function health(config: Config, opts: HealthOptions = {}): Promise<HealthReport> {
  const started = new Date();
  const t0 = performance.now();
  const timeoutMs = opts.timeoutMs ?? config.health.timeoutMs;
  const thresholds = resolveThresholds(config.health, opts.thresholds);
  const targets: Target[] = config.shards.flatMap((shard) => [
    { shard, role: 'primary' as const, url: shard.primary },
    ...shard.replicas.map((url) => ({ shard, role: 'replica' as const, url })),
  ]);
  const catalogRead = opts.catalog === false ? undefined : readCatalog(config, timeoutMs);
  const outcomes = await Promise.all(
    targets.map((t) => probeServer({ label: `shard ${t.shard.id} ${t.role}`, url: t.url }, timeoutMs)),
  );
  const primaryFacts = new Map(
    targets.flatMap((t, i) => {
      const o = outcomes[i]!;
      return t.role === 'primary' && o.ok ? [[t.shard.id, o.value] as const] : [];
    }),
  );
  const servers = targets.map((t, i) => evaluateServer(t, outcomes[i]!, primaryFacts.get(t.shard.id), thresholds));
  let catalog = catalogRead ? evaluateCatalog(config, await catalogRead, servers) : null;
  // an online migration in progress: the follower's lag and the WAL its slot keeps on the monolith
  const follower = catalog?.present ? await readFollower(config, timeoutMs).catch(() => null) : null;
  if (catalog && follower) {
    const checks = [...catalog.checks, ...followerChecks(follower, thresholds)];
    catalog = { ...catalog, checks, status: worst(checks.map((c) => c.status)) };
  }
  // a rollback window after cutover: the reverse follower's lag and the WAL its slots keep on the shards
  const reverse = catalog?.present ? await readReverse(config, timeoutMs).catch(() => null) : null;
  if (catalog && reverse) {
    const checks = [...catalog.checks, ...reverseChecks(reverse, thresholds)];
    catalog = { ...catalog, checks, status: worst(checks.map((c) => c.status)) };
  }

  const problems: Problem[] = [
    ...servers.flatMap((s) =>
      s.checks.filter((c) => c.status !== 'ok').map((c) => ({ status: c.status, shard: s.shard, role: s.role, url: s.url, check: c.check, message: c.message })),
    ),
    ...(catalog?.checks ?? []).filter((c) => c.status !== 'ok').map((c) => ({ status: c.status, role: 'catalog' as const, url: catalog!.url, check: c.check, message: c.message })),
  ].sort(byRank); // stable: config order within a status
  const status = worst(problems.map((p) => p.status));
  return {
    status,
    checkedAt: started.toISOString(),
    durationMs: performance.now() - t0,
    timeoutMs,
    thresholds,
    shards: config.shards.length,
    servers,
    catalog,
    cellStatus: restrictedByShard(config),
    problems,
    ...(catalog ? { throttled: await readThrottled(config, servers, thresholds, timeoutMs) } : {}),
  };
}
