import { Option, type Command } from 'commander';
import type { CapacityStatus } from '../src/index.js';
import { duration, withGlobalOptions } from './context.js';
import { editAndRebalance, MOVE_TIMEOUT_FLAG, MOVE_TIMEOUT_HELP, type RebalanceFlags } from './run-rebalance.js';

/** `pin`, `unpin` and `mapping set`: topology edits to the config file, each followed by the rebalance plan. */
export function register(program: Command): void {
  withGlobalOptions(
    program
      .command('pin')
      .description('pin a tenant to a shard (isolate a hot tenant), then show (or --apply) the rebalance')
      .argument('<tenant>', 'tenant key')
      .argument('<shard>', 'shard id')
      .option('--apply', 'write the change to the config and run the rebalance (without it: a preview that changes nothing)')
      .option('--offline', 'fence each unit for its whole copy (no logical decoding needed on the old shard) instead of moving it online')
      .option(MOVE_TIMEOUT_FLAG, MOVE_TIMEOUT_HELP, duration('--timeout', 's')),
  ).action(async (tenant: string, shard: string, opts: RebalanceFlags) => {
    const { setPin } = await import('../src/index.js');
    await editAndRebalance(opts, { edit: setPin(tenant, shard), done: `tenant ${tenant} pinned to ${shard}`, applyWith: again(['pin', tenant, shard], opts) });
  });

  withGlobalOptions(
    program
      .command('unpin')
      .description('remove a pin (the tenant routes by the hash again), then show (or --apply) the rebalance')
      .argument('<tenant>', 'tenant key')
      .option('--apply', 'write the change to the config and run the rebalance (without it: a preview that changes nothing)')
      .option('--offline', 'fence each unit for its whole copy (no logical decoding needed on the old shard) instead of moving it online')
      .option(MOVE_TIMEOUT_FLAG, MOVE_TIMEOUT_HELP, duration('--timeout', 's')),
  ).action(async (tenant: string, opts: RebalanceFlags) => {
    const { removePin } = await import('../src/index.js');
    await editAndRebalance(opts, { edit: removePin(tenant), done: `tenant ${tenant} unpinned`, applyWith: again(['unpin', tenant], opts) });
  });

  const mapping = program.command('mapping').description('edit the H3 cell → shard mapping');
  withGlobalOptions(
    mapping
      .command('set')
      .description('map an H3 cell (at the shard resolution) to a shard, then show (or --apply) the rebalance')
      .argument('<cell>', 'H3 cell index (hex)')
      .argument('<shard>', 'shard id')
      .option('--region <name>', 'region label')
      .addOption(new Option('--status <status>', 'capacity status: read-only refuses writes to the cell, full keeps new cells off its shard').choices(['active', 'full', 'read-only']))
      .option('--apply', 'write the change to the config and run the rebalance (without it: a preview that changes nothing)')
      .option('--offline', 'fence each unit for its whole copy (no logical decoding needed on the old shard) instead of moving it online')
      .option(MOVE_TIMEOUT_FLAG, MOVE_TIMEOUT_HELP, duration('--timeout', 's')),
  ).action(async (cell: string, shard: string, opts: RebalanceFlags & { region?: string; status?: CapacityStatus }) => {
    const args = ['mapping', 'set', cell, shard, ...(opts.region !== undefined ? ['--region', opts.region] : []), ...(opts.status ? ['--status', opts.status] : [])];
    const { setMapping } = await import('../src/index.js');
    await editAndRebalance(opts, {
      edit: setMapping(cell, shard, opts.region, opts.status),
      done: `cell ${cell} mapped to ${shard}${opts.status ? ` (${opts.status})` : ''}`,
      applyWith: again(args, opts),
      readOnly: opts.status !== undefined,
    });
  });
}

/** The command line that applies a preview, arguments quoted for a POSIX shell. */
function again(args: string[], opts: RebalanceFlags): string {
  const words = ['shardctl', ...args, '--apply', ...(opts.offline ? ['--offline'] : []), ...(opts.config ? ['--config', opts.config] : [])];
  return words.map((w) => (/^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`)).join(' ');
}
