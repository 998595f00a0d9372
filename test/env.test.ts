import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Command, Option } from 'commander';
import { applyEnvTwins, envName } from '../commands/env.js';
import { buildProgram } from '../commands/cli.js';
import { positiveInt, commaList } from '../commands/context.js';
import { runCli } from './helpers/cli.js';
import { repoPath } from './helpers/paths.js';

const CONFIG = repoPath('test/configs/good-jump.yaml');
const ENV = { S0_PASSWORD: 'pw' };

/** A command like ours, parsed with `argv` and `env` the way the CLI does (twins applied before the action). */
function parsed(argv: string[], env: Record<string, string>): Record<string, unknown> {
  const cmd = new Command('x')
    .exitOverride()
    .configureOutput({ writeErr: () => undefined })
    .option('--concurrency <n>', 'n', positiveInt('--concurrency'))
    .option('--units <ids>', 'ids', commaList)
    .addOption(new Option('--strategy <kind>', 'kind').choices(['jump', 'h3']).default('jump'))
    .option('--dry-run', 'switch')
    .option('--no-verify', 'negated switch');
  cmd.hook('preAction', (_c, action) => applyEnvTwins(action, env)).action(() => undefined);
  cmd.parse(argv, { from: 'user' });
  return cmd.opts();
}

describe('SHARDCTL_<FLAG> environment twins', () => {
  it('every flag of every command has a twin named after the flag', () => {
    const names = new Set<string>();
    for (const cmd of buildProgram().commands.flatMap((c) => [c, ...c.commands])) {
      for (const o of cmd.options as Option[]) {
        assert.match(envName(o), /^SHARDCTL_[A-Z0-9_]+$/, `${cmd.name()} ${o.flags}`);
        names.add(envName(o));
      }
    }
    for (const n of ['SHARDCTL_CONFIG', 'SHARDCTL_JSON', 'SHARDCTL_CONCURRENCY', 'SHARDCTL_BATCH_ROWS', 'SHARDCTL_NO_VERIFY', 'SHARDCTL_DRY_RUN', 'SHARDCTL_APPLY']) {
      assert.ok(names.has(n), n);
    }
  });

  it('flags > environment > defaults, each value parsed and checked as the flag is', () => {
    assert.deepEqual(parsed([], {}), { strategy: 'jump', verify: true });
    const env = { SHARDCTL_CONCURRENCY: '3', SHARDCTL_UNITS: '1,2', SHARDCTL_STRATEGY: 'h3', SHARDCTL_DRY_RUN: 'true', SHARDCTL_NO_VERIFY: '1' };
    assert.deepEqual(parsed([], env), { concurrency: 3, units: ['1', '2'], strategy: 'h3', dryRun: true, verify: false });
    assert.deepEqual(parsed(['--concurrency', '5', '--units', '9', '--strategy', 'jump'], env), {
      concurrency: 5,
      units: ['9'],
      strategy: 'jump',
      dryRun: true,
      verify: false,
    });
    // a switch's twin set to false leaves it off (or on, for a --no- switch)
    assert.deepEqual(parsed([], { SHARDCTL_DRY_RUN: '0', SHARDCTL_NO_VERIFY: 'false' }), { strategy: 'jump', verify: true });
    assert.throws(() => parsed([], { SHARDCTL_CONCURRENCY: '0' }), /SHARDCTL_CONCURRENCY="0" is invalid: --concurrency must be a whole number/);
    assert.throws(() => parsed([], { SHARDCTL_STRATEGY: 'ring' }), /SHARDCTL_STRATEGY="ring" is invalid: allowed: jump, h3/);
    assert.throws(() => parsed([], { SHARDCTL_DRY_RUN: 'maybe' }), /SHARDCTL_DRY_RUN="maybe" is invalid/);
  });

  it('through the CLI: twins fill what the command line leaves out, and a bad one is exit 2 naming it', () => {
    const viaEnv = runCli(['route', '42'], { ...ENV, SHARDCTL_CONFIG: CONFIG, SHARDCTL_JSON: '1' });
    assert.equal(viaEnv.status, 0, viaEnv.stderr);
    assert.deepEqual(JSON.parse(viaEnv.stdout).map((r: { key: string }) => r.key), ['42']);
    const flagWins = runCli(['route', '42', '--config', CONFIG], { ...ENV, SHARDCTL_CONFIG: '/nonexistent.yaml', SHARDCTL_JSON: 'no' });
    assert.equal(flagWins.status, 0, flagWins.stderr);
    assert.match(flagWins.stdout, /^42\ts[01]\n$/);
    const bad = runCli(['migrate', '--config', CONFIG], { ...ENV, SHARDCTL_CONCURRENCY: 'lots' });
    assert.equal(bad.status, 2, bad.stderr);
    assert.match(bad.stderr, /SHARDCTL_CONCURRENCY="lots" is invalid: --concurrency must be a whole number/);
    assert.doesNotMatch(bad.stderr, /internal error|\bat .*\.js:\d+/);
    const health = runCli(['health', '--config', CONFIG], { ...ENV, SHARDCTL_TIMEOUT: 'soon' });
    assert.equal(health.status, 3, 'a usage error is UNKNOWN for health');
    assert.match(health.stderr, /SHARDCTL_TIMEOUT="soon" is invalid/);
  });
});
