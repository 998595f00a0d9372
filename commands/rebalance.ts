import type { Command } from 'commander';
import { duration, load, positiveInt, withGlobalOptions } from './context.js';
import { MOVE_TIMEOUT_FLAG, MOVE_TIMEOUT_HELP, runRebalance, type RebalanceFlags } from './run-rebalance.js';

export function register(program: Command): void {
  withGlobalOptions(
    program
      .command('rebalance')
      .description('show (or --apply) the moves implied by the topology: fence, copy, verify, flip, delete, lift')
      .option('--apply', 'carry the moves out, unit by unit')
      .option('--offline', 'fence each unit for its whole copy (no logical decoding needed on the old shard) instead of moving it online')
      .option('--concurrency <n>', 'units moved at once (default 2)', positiveInt('--concurrency'))
      .option(MOVE_TIMEOUT_FLAG, MOVE_TIMEOUT_HELP, duration('--timeout', 's')),
  ).action(async (opts: RebalanceFlags) => {
    await runRebalance(await load(opts), opts);
  });
}
