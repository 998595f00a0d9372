import type { Command } from 'commander';
import type { ResolveResult } from '../src/index.js';
import { load, output, withGlobalOptions, type GlobalOptions } from './context.js';
import { resolveExit } from './exit-codes.js';
import { table } from './ui/format.js';

/**
 * `shardctl resolve`: finishes cross-shard transactions whose coordinator died between prepare and
 * commit. Exit 0 when none is left in doubt, 1 when one could not be finished (or its coordinator
 * still runs), 3 when the catalog cannot be reached.
 */
export function register(program: Command): void {
  withGlobalOptions(
    program
      .command('resolve')
      .description('commit or roll back in-doubt two-phase (cross-shard) transactions from the catalog record'),
  ).action(async (opts: GlobalOptions) => {
    const config = await load(opts);
    const { resolve } = await import('../src/index.js');
    const result = await resolve(config);
    process.exitCode = resolveExit(result);
    output(opts).result(render(result), { ...result, exitCode: process.exitCode });
  });
}

function render(r: ResolveResult): string {
  const lines: string[] = [];
  if (!r.transactions.length) lines.push('no transaction in doubt');
  else {
    lines.push(
      table(
        ['transaction', 'started', 'decision', 'shards'],
        r.transactions.map((t) => [
          t.gid,
          t.startedAt,
          t.decision === 'in progress' ? 'in progress (its coordinator still runs)' : t.decision,
          t.shards.map((s) => `${s.shard}: ${s.action}${s.error ? ` (${s.error})` : ''}`).join(', '),
        ]),
      ),
    );
  }
  for (const u of r.unknown) lines.push(`shard ${u.shard}: prepared transaction ${u.gid} (since ${u.prepared}) has no open catalog record; left alone`);
  return lines.join('\n');
}
