import type { Command } from 'commander';
import { load, positiveInt, withGlobalOptions } from './context.js';
import { runRebalance, type RebalanceFlags } from './run-rebalance.js';

export function register(program: Command): void {
  withGlobalOptions(
    program
      .command('rebalance')
      .description('show (or --apply) the moves implied by the topology: fence, copy, verify, flip, delete, lift')
      .option('--apply', 'carry the moves out, unit by unit')
      .option('--offline', 'fence each unit for its whole copy (no logical decoding needed on the old shard) instead of moving it online')
      .option('--concurrency <n>', 'units moved at once (default 2)', positiveInt('--concurrency')),
  ).action(async (opts: RebalanceFlags) => {
    await runRebalance(load(opts), opts);
  });
}
