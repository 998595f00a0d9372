import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildProgram } from '../../commands/cli.js';
import { runCli } from '../helpers/cli.js';
import { repoPath } from '../helpers/paths.js';

/**
 * The DBA's interface without servers: every URL points at a port nothing listens on, so a command
 * that got past its flags ends with exit 3 (cannot connect), one that did not with exit 2.
 */
const DOWN = 'postgres://app:secret@127.0.0.1:1/pos';
const config = (health = '') => `source: ${DOWN}
strategy: { kind: jump, key: restaurant_id }
shards:
  - { id: s0, primary: "${DOWN}", replicas: ["${DOWN.replace('/pos', '/r')}"] }
  - { id: s1, primary: "${DOWN}" }
tables:
  - { name: restaurants, key: id }
${health}`;

/** A temporary directory holding the unreachable fleet's config, for one describe block. */
function scratch(prefix: string): { dir: string; cfg: string } {
  const at = { dir: '', cfg: '' };
  before(() => {
    at.dir = mkdtempSync(path.join(os.tmpdir(), `shardctl-${prefix}-`));
    at.cfg = path.join(at.dir, 'shardctl.yaml');
    writeFileSync(at.cfg, config());
  });
  after(() => rmSync(at.dir, { recursive: true, force: true }));
  return at;
}

describe('the interface: versions, usage errors, help, pipes', () => {
  const at = scratch('interface');

  it("--version is shardctl's own, whatever npm script runs it", () => {
    const own = JSON.parse(readFileSync(repoPath('package.json'), 'utf8')).version as string;
    const r = runCli(['--version'], { npm_package_version: '9.9.9' });
    assert.equal(r.status, 0);
    assert.equal(r.stdout.trim(), own);
  });

  it('--json reports a usage error as JSON on stdout too (exit 2)', () => {
    const r = runCli(['route', '42', '--json', '--bogus', '--config', at.cfg]);
    assert.equal(r.status, 2, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.equal(doc.ok, false);
    assert.equal(doc.error.kind, 'usage');
    assert.match(doc.error.message, /unknown option '--bogus'/);
  });

  it('every command has examples and exit codes in --help; each twin is shown next to its flag', () => {
    const all = (c: ReturnType<typeof buildProgram>): ReturnType<typeof buildProgram>[] => [c, ...c.commands.flatMap(all)];
    const leaves = all(buildProgram()).filter((c) => c.commands.length === 0);
    assert.ok(leaves.length >= 16, `${leaves.length} commands`);
    for (const cmd of leaves) {
      const words = cmd.name() === 'set' ? ['mapping', 'set'] : [cmd.name()];
      const r = runCli([...words, '--help']);
      assert.equal(r.status, 0, cmd.name());
      assert.match(r.stdout, /\nExamples:\n {2}\$ (npx )?shardctl /, `${cmd.name()} --help has examples`);
      assert.match(r.stdout, cmd.name() === 'health' ? /Exit codes \(monitoring convention\):\n {2}0 {2}OK/ : /Exit codes:\n {2}0 /, `${cmd.name()} --help has exit codes`);
    }
    const cutover = runCli(['cutover', '--help']).stdout.replace(/\s+/g, ' ');
    assert.match(cutover, /--timeout <duration> .*\[env: SHARDCTL_CUTOVER_TIMEOUT\]/);
    assert.match(cutover, /--config <file> .*\[env: SHARDCTL_CONFIG\]/);
    assert.doesNotMatch(cutover, /SHARDCTL_REVERSE|SHARDCTL_FINISH/);
  });

  it('a reader that closes the pipe early (route … | head -1) is not a crash', () => {
    const err = path.join(at.dir, 'epipe.err');
    for (const json of ['', '--json']) {
      const line = `"${process.execPath}" "${repoPath('bin/shardctl.js')}" route $(seq 1 20000) ${json} --config "${at.cfg}" 2>"${err}" | head -1; echo "status \${PIPESTATUS[0]}"`;
      const r = spawnSync('bash', ['-c', line], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
      const stderr = readFileSync(err, 'utf8');
      assert.match(r.stdout, /status 0\n$/, stderr);
      assert.doesNotMatch(stderr, /EPIPE|internal error|Unhandled/);
    }
  });
});

describe('environment twins are for settings only, and say so', () => {
  const at = scratch('twins');

  it('SHARDCTL_FOLLOW does not turn migrate --abandon into a conflict, nor rollback into rollback --follow', () => {
    const r = runCli(['migrate', '--abandon', '--config', at.cfg], { SHARDCTL_FOLLOW: '1' });
    assert.doesNotMatch(r.stderr, /do not go together/);
    assert.match(r.stderr, /warning: SHARDCTL_FOLLOW is ignored: --follow has no environment variable/);
    assert.equal(r.status, 3, r.stderr); // it went on to abandon, and could not reach the monolith
    const back = runCli(['rollback', '--json', '--config', at.cfg], { SHARDCTL_FOLLOW: '1' });
    assert.match(back.stderr, /SHARDCTL_FOLLOW is ignored/);
    assert.doesNotMatch(back.stderr, /"type":"reverse-start"/);
  });

  it('SHARDCTL_APPLY, _FORCE, _FINISH, _REVERSE, _ABANDON are ignored with a warning; the old shared SHARDCTL_TIMEOUT names its replacement', () => {
    const f = runCli(['failover', 's0', '--json', '--config', at.cfg], { SHARDCTL_APPLY: '1', SHARDCTL_FORCE: 'yes' });
    assert.match(f.stderr, /SHARDCTL_APPLY is ignored/);
    assert.match(f.stderr, /SHARDCTL_FORCE is ignored/);
    const c = runCli(['cutover', '--config', at.cfg], { SHARDCTL_FINISH: '1', SHARDCTL_REVERSE: '1', SHARDCTL_TIMEOUT: '60' });
    assert.match(c.stderr, /SHARDCTL_FINISH is ignored/);
    assert.match(c.stderr, /SHARDCTL_TIMEOUT is ignored: use SHARDCTL_CUTOVER_TIMEOUT/);
    assert.doesNotMatch(c.stderr, /rollback window/);
    const h = runCli(['health', '--config', at.cfg], { SHARDCTL_TIMEOUT: '60' });
    assert.match(h.stderr, /SHARDCTL_TIMEOUT is ignored: use SHARDCTL_HEALTH_TIMEOUT/);
  });

  it('a conflict names the variable that caused it; a timeout exported for cutovers does not stop cutover --finish', () => {
    const h = runCli(['health', '--prometheus', '--config', at.cfg], { SHARDCTL_JSON: '1' });
    assert.equal(h.status, 3);
    assert.match(h.stderr, /SHARDCTL_JSON=1 and --prometheus both want stdout/);
    const finish = runCli(['cutover', '--finish', '--config', at.cfg], { SHARDCTL_CUTOVER_TIMEOUT: '2m' });
    assert.doesNotMatch(finish.stderr, /does not go with/);
    assert.equal(finish.status, 3, finish.stderr); // it went on, and could not reach the catalog
    const flag = runCli(['cutover', '--finish', '--timeout', '2m', '--config', at.cfg]);
    assert.equal(flag.status, 2);
    assert.match(flag.stderr, /--finish does not go with --timeout/);
  });
});

describe('one syntax for durations and sizes', () => {
  const at = scratch('durations');

  it('cutover --timeout takes 60s and 2m, a bare number with a deprecation note, and refuses anything else (exit 2)', () => {
    for (const t of ['60s', '2m', '500ms']) {
      const r = runCli(['cutover', '--timeout', t, '--config', at.cfg]);
      assert.equal(r.status, 3, `${t}: ${r.stderr}`); // past the flags, on to the (unreachable) servers
      assert.doesNotMatch(r.stderr, /warning/);
    }
    const bare = runCli(['cutover', '--timeout', '60', '--config', at.cfg]);
    assert.equal(bare.status, 3, bare.stderr);
    assert.match(bare.stderr, /warning: --timeout 60 is read as 60s; write the unit/);
    const bad = runCli(['cutover', '--timeout', 'soon', '--config', at.cfg]);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--timeout must be a duration such as 500ms, 60s or 2m, got "soon"/);
    const env = runCli(['rollback', '--config', at.cfg], { SHARDCTL_ROLLBACK_TIMEOUT: '1h' });
    assert.equal(env.status, 3, env.stderr);
  });

  it('health takes --timeout 500ms and 2s (a bare number is milliseconds there), sizes and ratios; levels are checked', () => {
    for (const args of [['--timeout', '500ms'], ['--timeout', '1s'], ['--lag-bytes-warning', '64MB'], ['--lag-warning', '30s', '--prepared-critical', '10m'], ['--connections-warning', '0.5']]) {
      const r = runCli(['health', ...args, '--config', at.cfg]);
      assert.equal(r.status, 2, `${args.join(' ')}: CRITICAL (servers down), not UNKNOWN: ${r.stderr}`);
      assert.match(r.stdout, /CRITICAL s0 primary/);
    }
    const ms = runCli(['health', '--timeout', '250', '--config', at.cfg]);
    assert.match(ms.stderr, /--timeout 250 is read as 250ms/);
    const order = runCli(['health', '--lag-warning', '10m', '--lag-critical', '1m', '--config', at.cfg]);
    assert.equal(order.status, 3, 'UNKNOWN');
    assert.match(order.stderr, /--lag-warning \(600\) is above --lag-critical \(60\)/);
    const ratio = runCli(['health', '--connections-critical', '1.5', '--config', at.cfg]);
    assert.equal(ratio.status, 3);
    assert.match(ratio.stderr, /--connections-critical must be a ratio from 0 to 1/);
  });

  it('failover --max-lag-bytes 64MB and --max-lag-seconds 5s are accepted like health\'s', () => {
    const r = runCli(['failover', 's0', '--max-lag-bytes', '64MB', '--max-lag-seconds', '5s', '--config', at.cfg]);
    assert.equal(r.status, 0, r.stderr); // the plan, refused: the replica does not answer
    assert.match(r.stdout, /failover of shard s0 .*\(plan\)/);
    assert.doesNotMatch(r.stderr, /must be/);
    const bad = runCli(['failover', 's0', '--max-lag-bytes', 'lots', '--config', at.cfg]);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--max-lag-bytes must be a size such as 64MB/);
  });

  it('the config: a warning level above its critical one, or a ratio above 1, is a config error naming the key (exit 2)', () => {
    const file = path.join(at.dir, 'levels.yaml');
    writeFileSync(file, config('health: { lagSeconds: { warning: 600, critical: 60 }, connections: { warning: 0.8, critical: 1.5 } }\n'));
    const r = runCli(['route', '1', '--config', file]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /health\.lagSeconds\.warning: warning must not be above critical/);
    assert.match(r.stderr, /health\.connections\.critical: must be a ratio from 0 to 1/);
  });
});
