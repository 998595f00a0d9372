import type { Command } from 'commander';
import type { RemoveShardResult } from '../src/index.js';
import { removeShardExit } from './exit-codes.js';
import { duration, load, output, positiveInt, programHooks, withGlobalOptions } from './context.js';
import { MOVE_TIMEOUT_FLAG, MOVE_TIMEOUT_HELP, rebalanceReporter, render as renderMoves, type RebalanceFlags } from './run-rebalance.js';
import { interruptSignal } from './signals.js';

export function register(program: Command): void {
  withGlobalOptions(
    program
      .command('remove-shard')
      .description('drain a shard onto the others and remove it from the topology (shows the plan; --apply does it; rerun to resume)')
      .argument('<id>', 'shard id')
      .option('--apply', 'remap, move unit by unit, then remove the shard once it holds nothing')
      .option('--offline', 'fence each unit for its whole copy (no logical decoding needed on the old shard) instead of moving it online')
      .option('--concurrency <n>', 'units moved at once (default 2)', positiveInt('--concurrency'))
      .option(MOVE_TIMEOUT_FLAG, MOVE_TIMEOUT_HELP, duration('--timeout', 's')),
  ).action(async (id: string, opts: RebalanceFlags) => {
    const config = await load(opts);
    const { removeShard } = await import('../src/index.js');
    const out = output(opts);
    const interrupt = interruptSignal();
    const reporter = rebalanceReporter(opts);
    try {
      const r = await removeShard(config, id, {
        apply: opts.apply,
        concurrency: opts.concurrency,
        offline: opts.offline,
        timeoutSeconds: opts.timeout === undefined ? undefined : opts.timeout / 1000,
        signal: interrupt.signal,
        onEvent: (e) => reporter.event(e),
        onMovePoint: programHooks().onMovePoint,
      }).finally(() => reporter.stop());
      out.result(render(r, config.file), r);
      process.exitCode = removeShardExit(r);
    } finally {
      interrupt.dispose();
    }
  });
}

function render(r: RemoveShardResult, file: string): string {
  const kind = r.reassign.some((x) => /^[0-9a-f]{15}$/.test(x.unit)) ? 'cell' : 'tenant';
  const lines = [r.reassign.length ? `${r.reassign.length} ${kind}(s) of shard ${r.id} reassigned: ${summary(r)}` : `nothing routes to shard ${r.id} any more`];
  if (!r.drain.applied) {
    lines.push(r.drain.moves.length ? renderMoves(r.drain, file).split('\n').slice(0, -1).join('\n') : 'no unit to move');
    lines.push(`nothing was changed. Apply with: shardctl remove-shard ${r.id} --apply --config ${file}`);
    return lines.join('\n');
  }
  lines.push(renderMoves(r.drain, file));
  if (r.removed) lines.push(`shard ${r.id} holds nothing and has left ${file} and the catalog`);
  else if (r.remaining.length) lines.push(`shard ${r.id} stays in the topology: ${r.remaining.join('; ')}; run the command again once it is empty`);
  else lines.push(`shard ${r.id} stays in the topology until every move has completed; run the command again`);
  return lines.join('\n');
}

function summary(r: RemoveShardResult): string {
  const to = new Map<string, number>();
  for (const x of r.reassign) to.set(x.to, (to.get(x.to) ?? 0) + 1);
  return [...to].map(([s, n]) => `${n} to ${s}`).join(', ');
}
