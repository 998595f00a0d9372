import { Option, type Command } from 'commander';
import { applyReadOnly, checkNoOnlineWindow, editConfigFile, removePin, setMapping, setPin, type CapacityStatus } from '../src/index.js';
import { load, output, withGlobalOptions } from './context.js';
import { runRebalance, type RebalanceFlags } from './run-rebalance.js';

/** `pin`, `unpin` and `mapping set`: topology edits to the config file, each followed by the rebalance plan. */
export function register(program: Command): void {
  withGlobalOptions(
    program
      .command('pin')
      .description('pin a tenant to a shard (isolate a hot tenant), then show (or --apply) the rebalance')
      .argument('<tenant>', 'tenant key')
      .argument('<shard>', 'shard id')
      .option('--apply', 'run the rebalance right away')
      .option('--offline', 'fence each unit for its whole copy (no logical decoding needed on the old shard) instead of moving it online'),
  ).action(async (tenant: string, shard: string, opts: RebalanceFlags) => {
    const config = load(opts);
    if (opts.apply) await checkNoOnlineWindow(config.catalog, 'pin --apply'); // before the config file changes
    const next = editConfigFile(config.file, setPin(tenant, shard));
    output(opts).info(`tenant ${tenant} pinned to ${shard} in ${config.file}`);
    await runRebalance(next, opts);
  });

  withGlobalOptions(
    program
      .command('unpin')
      .description('remove a pin (the tenant routes by the hash again), then show (or --apply) the rebalance')
      .argument('<tenant>', 'tenant key')
      .option('--apply', 'run the rebalance right away')
      .option('--offline', 'fence each unit for its whole copy (no logical decoding needed on the old shard) instead of moving it online'),
  ).action(async (tenant: string, opts: RebalanceFlags) => {
    const config = load(opts);
    if (opts.apply) await checkNoOnlineWindow(config.catalog, 'unpin --apply');
    const next = editConfigFile(config.file, removePin(tenant));
    output(opts).info(`tenant ${tenant} unpinned in ${config.file}`);
    await runRebalance(next, opts);
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
      .option('--apply', 'run the rebalance right away')
      .option('--offline', 'fence each unit for its whole copy (no logical decoding needed on the old shard) instead of moving it online'),
  ).action(async (cell: string, shard: string, opts: RebalanceFlags & { region?: string; status?: CapacityStatus }) => {
    const config = load(opts);
    if (opts.apply) await checkNoOnlineWindow(config.catalog, 'mapping set --apply');
    const next = editConfigFile(config.file, setMapping(cell, shard, opts.region, opts.status));
    output(opts).info(`cell ${cell} mapped to ${shard}${opts.status ? ` (${opts.status})` : ''} in ${config.file}`);
    // read-only takes effect now, on the shards as they are; it does not wait for a rebalance
    if (opts.status) await applyReadOnly(next);
    await runRebalance(next, opts);
  });
}
