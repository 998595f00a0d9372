import { Option, type Command } from 'commander';
import { redactUrl } from '../src/basics.js';
import { duration, load, output, positiveInt, withGlobalOptions } from './context.js';
import { MOVE_TIMEOUT_FLAG, MOVE_TIMEOUT_HELP, runRebalance, type RebalanceFlags } from './run-rebalance.js';

interface AddShardFlags extends RebalanceFlags {
  id: string;
  primary: string;
  replica?: string[];
}

export function register(program: Command): void {
  withGlobalOptions(
    program
      .command('add-shard')
      .description('check a new server, create the configured tables on it, append it to the topology, show (or --apply) the rebalance')
      .requiredOption('--id <id>', 'the new shard id (appended last: jump buckets keep their order)')
      .requiredOption('--primary <url>', "its primary, e.g. 'postgres://app:${S4_PASSWORD}@shard4:5432/pos' (kept as written in the config)")
      .addOption(new Option('--replica <url>', 'a streaming replica (repeatable)').argParser((v: string, prev: string[] = []) => [...prev, v]))
      .option('--apply', 'create the tables, append the shard to the config and the catalog, run the rebalance (without it: a preview that changes nothing)')
      .option('--offline', 'fence each unit for its whole copy (no logical decoding needed on the old shard) instead of moving it online')
      .option('--concurrency <n>', 'units moved at once (default 2)', positiveInt('--concurrency'))
      .option(MOVE_TIMEOUT_FLAG, MOVE_TIMEOUT_HELP, duration('--timeout', 's')),
  ).action(async (opts: AddShardFlags) => {
    const config = await load(opts);
    const { addShard } = await import('../src/index.js');
    const out = output(opts);
    // The URL may carry ${VAR} references: kept as written in the file, resolved by the config loader.
    // Without --apply the server is only checked: nothing is created on it and the file is not written.
    const r = await addShard(config, { id: opts.id, primary: opts.primary, replicas: opts.replica, apply: Boolean(opts.apply) });
    const added = r.config.shards.find((s) => s.id === r.id)!;
        if (!r.applied) {
      out.info(`preview: shard ${r.id} (${redactUrl(added.primary)}) can be added; ${r.created.length} table(s) to create (${config.file} not changed)`);
      await runRebalance(r.config, opts, { applyWith: 'the same command with --apply' });
      return;
    }
    out.info(`shard ${r.id} (${redactUrl(added.primary)}) added to ${config.file}; created ${r.created.length} table(s)`);
    await runRebalance(r.config, opts);
  });
}
