import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Command, Option } from 'commander';
import { applyEnvTwins, twinOf } from '../../commands/env.js';
import { buildProgram } from '../../commands/cli.js';
import { positiveInt, commaList } from '../../commands/context.js';
import { runCli } from '../helpers/cli.js';
import { repoPath } from '../helpers/paths.js';

const CONFIG = repoPath('test/configs/good-jump.yaml');
const ENV = { S0_PASSWORD: 'pw' };

/** A command like ours, parsed with `argv` and `env` the way the CLI does (twins applied before the action). */
function parsed(argv: string[], env: Record<string, string>): Record<string, unknown> {
  const cmd = new Command('migrate')
    .exitOverride()
    .configureOutput({ writeErr: () => undefined })
    .option('--concurrency <n>', 'n', positiveInt('--concurrency'))
    .option('--batch-rows <n>', 'n', positiveInt('--batch-rows'))
    .option('--json', 'switch')
    .option('--units <ids>', 'ids', commaList)
    .addOption(new Option('--strategy <kind>', 'kind').choices(['jump', 'h3']).default('jump'))
    .option('--dry-run', 'switch')
    .option('--no-verify', 'negated switch');
  cmd.hook('preAction', (_c, action) => applyEnvTwins(action, env, () => undefined)).action(() => undefined);
  cmd.parse(argv, { from: 'user' });
  return cmd.opts();
}

describe('SHARDCTL_* environment twins: settings only', () => {
  it('twins exist for settings (config, output, concurrency per meaning, timeouts per command) and never for an action flag', () => {
    const twins = new Map<string, string>();
    for (const cmd of buildProgram().commands.flatMap((c) => [c, ...c.commands])) {
      for (const o of cmd.options as Option[]) {
        const name = twinOf(cmd, o);
        if (name) twins.set(`${cmd.name()} ${o.long}`, name);
      }
    }
    for (const [cmd, name] of Object.entries({
      'migrate --config': 'SHARDCTL_CONFIG', 'health --json': 'SHARDCTL_JSON', 'verify --quiet': 'SHARDCTL_QUIET',
      'migrate --concurrency': 'SHARDCTL_MIGRATE_CONCURRENCY', 'verify --concurrency': 'SHARDCTL_VERIFY_CONCURRENCY',
      'rebalance --concurrency': 'SHARDCTL_REBALANCE_CONCURRENCY', 'remove-shard --concurrency': 'SHARDCTL_REBALANCE_CONCURRENCY',
      'cutover --timeout': 'SHARDCTL_CUTOVER_TIMEOUT', 'rollback --timeout': 'SHARDCTL_ROLLBACK_TIMEOUT', 'health --timeout': 'SHARDCTL_HEALTH_TIMEOUT',
      'migrate --batch-rows': 'SHARDCTL_BATCH_ROWS',
      'rebalance --timeout': 'SHARDCTL_MOVE_TIMEOUT', 'pin --timeout': 'SHARDCTL_MOVE_TIMEOUT', 'remove-shard --timeout': 'SHARDCTL_MOVE_TIMEOUT',
    })) assert.equal(twins.get(cmd), name, cmd);
    for (const action of ['--apply', '--follow', '--abandon', '--finish', '--force', '--reverse', '--dry-run', '--resync', '--offline', '--to', '--units', '--plan']) {
      assert.deepEqual([...twins.keys()].filter((k) => k.endsWith(` ${action}`)), [], `${action} has no twin`);
    }
  });

  it('flags > environment > defaults, each value parsed and checked as the flag is', () => {
    assert.deepEqual(parsed([], {}), { strategy: 'jump', verify: true });
    const env = { SHARDCTL_MIGRATE_CONCURRENCY: '3', SHARDCTL_BATCH_ROWS: '10', SHARDCTL_JSON: 'true' };
    assert.deepEqual(parsed([], env), { strategy: 'jump', verify: true, concurrency: 3, batchRows: 10, json: true });
    assert.deepEqual(parsed(['--concurrency', '5'], env), { strategy: 'jump', verify: true, concurrency: 5, batchRows: 10, json: true });
    // a switch's twin set to false leaves it off
    assert.deepEqual(parsed([], { SHARDCTL_JSON: '0' }), { strategy: 'jump', verify: true });
    assert.throws(() => parsed([], { SHARDCTL_MIGRATE_CONCURRENCY: '0' }), /SHARDCTL_MIGRATE_CONCURRENCY="0" is invalid: --concurrency must be a whole number/);
    assert.throws(() => parsed([], { SHARDCTL_JSON: 'maybe' }), /SHARDCTL_JSON="maybe" is invalid/);
    // action flags and strategy-like options are never read from the environment
    assert.deepEqual(parsed([], { SHARDCTL_DRY_RUN: '1', SHARDCTL_NO_VERIFY: '1', SHARDCTL_STRATEGY: 'h3', SHARDCTL_UNITS: '1' }), { strategy: 'jump', verify: true });
  });

  it('through the CLI: twins fill what the command line leaves out, and a bad one is exit 2 naming it', () => {
    const viaEnv = runCli(['route', '42'], { ...ENV, SHARDCTL_CONFIG: CONFIG, SHARDCTL_JSON: '1' });
    assert.equal(viaEnv.status, 0, viaEnv.stderr);
    assert.deepEqual(JSON.parse(viaEnv.stdout).map((r: { key: string }) => r.key), ['42']);
    const flagWins = runCli(['route', '42', '--config', CONFIG], { ...ENV, SHARDCTL_CONFIG: '/nonexistent.yaml', SHARDCTL_JSON: 'no' });
    assert.equal(flagWins.status, 0, flagWins.stderr);
    assert.match(flagWins.stdout, /^42\ts[01]\n$/);
    const bad = runCli(['migrate', '--config', CONFIG], { ...ENV, SHARDCTL_MIGRATE_CONCURRENCY: 'lots' });
    assert.equal(bad.status, 2, bad.stderr);
    assert.match(bad.stderr, /SHARDCTL_MIGRATE_CONCURRENCY="lots" is invalid: --concurrency must be a whole number/);
    assert.doesNotMatch(bad.stderr, /internal error|\bat .*\.js:\d+/);
    const health = runCli(['health', '--config', CONFIG], { ...ENV, SHARDCTL_HEALTH_TIMEOUT: 'soon' });
    assert.equal(health.status, 3, 'a usage error is UNKNOWN for health');
    assert.match(health.stderr, /SHARDCTL_HEALTH_TIMEOUT="soon" is invalid/);
  });
});
