import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { runCli, runCliAsync } from './helpers/cli.js';

describe('shardctl demo (through bin/, end to end)', () => {
  it('jump: the whole story exits 0 and the summary reports an exact verify; --keep leaves a usable fleet, --stop removes it', async () => {
    const r = await runCliAsync(['demo', '--scale', '0.02', '--keep']);
    const kept = /shardctl demo --stop (\S+)/.exec(r.stdout)?.[1];
    if (r.status !== 0 && kept) runCli(['demo', '--stop', kept]);
    assert.equal(r.status, 0, `${r.stdout.slice(-3000)}\n${r.stderr.slice(-1000)}`);
    for (const cmd of ['plan', 'migrate', 'verify', 'health', 'add-shard .*[^y]$', 'add-shard .* --apply']) {
      assert.match(r.stdout, new RegExp(`^\\$ shardctl ${cmd}`, 'm'), `ran ${cmd}`);
    }
    assert.equal((r.stdout.match(/^verify OK: everything matches/gm) ?? []).length, 2, 'verify passed before and after the rebalance');
    assert.match(r.stdout, /^OK: 5 shards, 10 servers/m, 'health after the new shard and its replica');
    assert.match(r.stdout, /verify proved every unit's row counts and checksums equal/);
    assert.match(r.stdout, /^ {4}s4: \d+ tenants? \(/m);
    assert.doesNotMatch(r.stdout + r.stderr, /postgres:\/\/[^:\s/]+:(?!\*\*\*@)[^@\s]+@/, 'no password anywhere');

    const pgpass = /export PGPASSFILE=(\S+)/.exec(r.stdout)![1]!;
    const config = /export SHARDCTL_CONFIG=(\S+)/.exec(r.stdout)![1]!;
    const dir = /shardctl demo --stop (\S+)/.exec(r.stdout)![1]!;
    const env = { PGPASSFILE: pgpass, SHARDCTL_CONFIG: config };
    try {
      const verify = runCli(['verify', '--quiet'], env);
      assert.equal(verify.status, 0, verify.stderr);
      assert.equal(runCli(['health', '--quiet'], env).stdout, '', 'healthy fleet: --quiet prints nothing');
    } finally {
      assert.equal(runCli(['demo', '--stop', dir]).status, 0); // a kept fleet outlives this process: always stop it
    }
    assert.equal(existsSync(dir), false);
    assert.equal(runCli(['health', '--quiet', '--timeout', '500ms'], env).status, 3, 'no config any more: UNKNOWN');
  });

  it('h3: a hot region is moved onto the new shard and verify stays exact', async () => {
    const r = await runCliAsync(['demo', '--strategy', 'h3', '--scale', '0.005']);
    assert.equal(r.status, 0, `${r.stdout.slice(-3000)}\n${r.stderr.slice(-1000)}`);
    assert.match(r.stdout, /^\$ shardctl mapping set [0-9a-f]{15} s4 --region \S+/m);
    assert.match(r.stdout, /moved 1 of 1 unit\(s\)/);
    assert.equal((r.stdout.match(/^verify OK: everything matches/gm) ?? []).length, 2);
    assert.match(r.stdout, /^ {4}s4: 1 cell \(/m);
  });

  it('refuses a bad scale with exit 2', () => {
    const r = runCli(['demo', '--scale', 'lots']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--scale must be a number above 0/);
  });
});
