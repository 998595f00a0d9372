import type { Command } from 'commander';
import type { FailoverOptions, FailoverResult } from '../src/index.js';
import { failoverExit } from './exit-codes.js';
import { duration, load, output, size, withGlobalOptions, type GlobalOptions } from './context.js';

interface FailoverFlags extends GlobalOptions, Omit<FailoverOptions, 'maxLagSeconds' | 'maxLagBytes'> {
  /** milliseconds */
  maxLagSeconds?: number;
  maxLagBytes?: number;
}

export function register(program: Command): void {
  withGlobalOptions(
    program
      .command('failover')
      .description("promote a shard's streaming replica and make it the primary in the config and the catalog (shows the plan; --apply does it)")
      .argument('<shard>', 'shard id')
      .option('--to <replica>', 'the replica to promote: its URL, host:port or position (default: the most advanced)')
      .option('--apply', 'fence the old primary if it answers, promote, rewrite the topology, re-run health')
      .option('--force', 'promote even when the replica is behind more than the limits')
      .option('--max-lag-seconds <duration>', 'refuse above this replay lag, e.g. 10s (default: health lagSeconds.warning)', duration('--max-lag-seconds', 's', { zero: true }))
      .option('--max-lag-bytes <size>', 'refuse above this much WAL not replayed, e.g. 64MB (default: health lagBytes.warning)', size('--max-lag-bytes')),
  ).action(async (shard: string, opts: FailoverFlags) => {
    const config = await load(opts);
    const { failover } = await import('../src/index.js');
    const out = output(opts);
    const r = await failover(config, shard, {
      to: opts.to,
      apply: opts.apply,
      force: opts.force,
      maxLagSeconds: opts.maxLagSeconds === undefined ? undefined : opts.maxLagSeconds / 1000,
      maxLagBytes: opts.maxLagBytes,
    });
    out.result(render(r, config.file), { ...r, config: undefined });
    process.exitCode = failoverExit(r);
  });
}

function render(r: FailoverResult, file: string): string {
  const lines = [`failover of shard ${r.shard} to ${r.candidate.shown}${r.applied ? ': done' : ' (plan)'}`];
  lines.push(...r.steps.map((s, i) => `  ${i + 1}. ${s}`));
  if (r.refusals.length) lines.push(`${r.forced ? 'forced past' : 'refused'}: ${r.refusals.join('; ')}`);
  if (r.caughtUp !== undefined) lines.push(r.caughtUp ? 'the replica replayed every write the old primary took before its fence' : 'WARNING: the replica had not replayed all of the old primary\'s WAL when promoted; the difference is lost');
  if (r.fence) lines.push(`old primary fenced: ${r.fence.tables} table(s) refuse writes, ${r.fence.sessionsEnded} session(s) ended`);
  if (!r.applied) {
    lines.push(r.refusals.length ? 'nothing was changed.' : `nothing was changed. Apply with: shardctl failover ${r.shard} --apply --config ${file}`);
    return lines.join('\n');
  }
  const h = r.health!;
  lines.push(`health after failover: ${h.status.toUpperCase()}${h.problems.length ? '' : ' (no problems)'}`);
  for (const p of h.problems) lines.push(`  ${p.status.toUpperCase()} ${p.shard ?? 'catalog'} ${p.role} ${p.url}: ${p.message}`);
  return lines.join('\n');
}
