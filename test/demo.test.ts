import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { loadConfig } from '../src/config/load.js';
import { runCli, runCliAsync } from './helpers/cli.js';
import { sql } from './helpers/fleet.js';

/** A kept fleet's URL with the password from its pgpass file (the config has none). */
const withPassword = (url: string, pgpass: string) => {
  const u = new URL(url);
  u.password = readFileSync(pgpass, 'utf8').trim().split(/(?<!\\):/)[4]!.replace(/\\(.)/g, '$1');
  return u.toString();
};
const n = (s: string) => Number(s.replace(/,/g, ''));

describe('shardctl demo (through bin/, end to end)', () => {
  it('online (the default): a writer writes through migrate --follow, cutover and an online rebalance; every acknowledged write is on the shards; --keep, --stop', async () => {
    const r = await runCliAsync(['demo', '--scale', '0.02', '--keep']);
    const kept = /shardctl demo --stop (\S+)/.exec(r.stdout)?.[1];
    if (r.status !== 0 && kept) runCli(['demo', '--stop', kept]);
    assert.equal(r.status, 0, `${r.stdout.slice(-3000)}\n${r.stderr.slice(-1000)}`);
    for (const cmd of ['plan', 'migrate --follow', 'cutover', 'add-shard .*[^y]$', 'add-shard .* --apply', 'verify --placement-only', 'health']) {
      assert.match(r.stdout, new RegExp(`^\\$ shardctl ${cmd}`, 'm'), `ran ${cmd}`);
    }
    assert.ok(r.stdout.indexOf('$ shardctl cutover') < r.stdout.indexOf('$ shardctl add-shard'), 'cutover before the new shard');
    assert.match(r.stdout, /^cut over: the shards are the source of truth; writes to the monolith were refused for [\d.]+m?s/m, 'cutover prints its outage');
    // the moves' progress lines go to stderr, as every command's progress does
    const moves = r.stderr.match(/^moved \d+: s\d → s4 \([\d,]+ rows, online; writes refused [\d.]+m?s\)$/gm) ?? [];
    const moved = Number(/^moved (\d+) of \1 unit\(s\)/m.exec(r.stdout)?.[1]);
    assert.ok(moved > 0 && moves.length === moved, `each unit moved online prints its outage: ${moves.length} of ${moved}\n${r.stderr.slice(-2000)}`);
    assert.match(r.stdout, /^verify OK: everything matches/m);
    assert.match(r.stdout, /^OK: 5 shards, 10 servers/m, 'health after the new shard and its replica');
    assert.doesNotMatch(r.stdout + r.stderr, /postgres:\/\/[^:\s/]+:(?!\*\*\*@)[^@\s]+@/, 'no password anywhere');
    assert.doesNotMatch(r.stderr, /DeprecationWarning/);

    // the demo's own count, whole: every live row found, none deleted left, and writes on the shards after the cutover
    const proof = /the writer's ([\d,]+) acknowledged transactions \(([\d,]+) of them on the shards\), counted on the shards by the demo's own SQL: ([\d,]+) of ([\d,]+) live orders with ([\d,]+) of ([\d,]+) items, ([\d,]+) of ([\d,]+) themes, 0 on two shards, 0 of ([\d,]+) deleted rows left/.exec(r.stdout);
    assert.ok(proof, r.stdout.slice(-3000));
    const [, , onShards, orders, ordersAck, items, itemsAck, themes, themesAck] = proof.map((x) => x ?? '');
    assert.ok(n(onShards!) > 0, 'the writer kept writing after the cutover');
    assert.equal(orders, ordersAck);
    assert.equal(items, itemsAck);
    assert.equal(themes, themesAck);

    const pgpass = /export PGPASSFILE=(\S+)/.exec(r.stdout)![1]!;
    const config = /export SHARDCTL_CONFIG=(\S+)/.exec(r.stdout)![1]!;
    const dir = /shardctl demo --stop (\S+)/.exec(r.stdout)![1]!;
    const env = { PGPASSFILE: pgpass, SHARDCTL_CONFIG: config };
    try {
      // this test's own oracle: the writer's themes (named 'live'; the fixture has none) on the shards, counted here
      let live = 0;
      for (const s of loadConfig(config).shards) live += Number((await sql(withPassword(s.primary, pgpass), `SELECT count(*) AS n FROM themes WHERE name = 'live'`))[0].n);
      assert.equal(live, n(themesAck!), "the shards hold exactly the writer's live themes");
      const verify = runCli(['verify', '--placement-only', '--quiet'], env);
      assert.equal(verify.status, 0, verify.stderr);
      assert.equal(runCli(['health', '--quiet'], env).stdout, '', 'healthy fleet: --quiet prints nothing');
    } finally {
      assert.equal(runCli(['demo', '--stop', dir]).status, 0); // a kept fleet outlives this process: always stop it
    }
    assert.equal(existsSync(dir), false);
    assert.equal(runCli(['health', '--quiet', '--timeout', '500ms'], env).status, 3, 'no config any more: UNKNOWN');
  });

  it('--offline keeps the offline story (h3: a hot region is moved onto the new shard and verify stays exact)', async () => {
    const r = await runCliAsync(['demo', '--offline', '--strategy', 'h3', '--scale', '0.005']);
    assert.equal(r.status, 0, `${r.stdout.slice(-3000)}\n${r.stderr.slice(-1000)}`);
    for (const cmd of ['plan', 'migrate', 'verify', 'health', 'add-shard .*[^y]$', 'add-shard .* --apply']) {
      assert.match(r.stdout, new RegExp(`^\\$ shardctl ${cmd}`, 'm'), `ran ${cmd}`);
    }
    assert.doesNotMatch(r.stdout, /^\$ shardctl (migrate --follow|cutover)/m);
    assert.match(r.stdout, /^\$ shardctl mapping set [0-9a-f]{15} s4 --region \S+ --apply/m);
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
