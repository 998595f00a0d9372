import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { stageFleet, type Stage } from '../harness/demo/stage.js';
import { loadConfig } from '../src/config/load.js';
import { failover } from '../src/failover/index.js';
import { UserError } from '../src/errors.js';
import { topologyRouter } from '../src/routing/router.js';
import { runCliAsync, watchCli, type CliResult } from './helpers/cli.js';
import { sql } from './helpers/fleet.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const LIMITS = { maxLagSeconds: 1e9, maxLagBytes: 1e12 }; // the lag checks pass: the replay test is the one tried
const inRecovery = async (url: string) => (await sql(url, 'SELECT pg_is_in_recovery() AS r'))[0].r as boolean;

describe('failover seams: POS, 2 shards with a streaming replica each', () => {
  let stage: Stage;
  let cfg: string;
  /** a tenant the config routes to `shard` */
  const tenantOn = (shard: string) => {
    const router = topologyRouter(loadConfig(cfg));
    return [...Array(30).keys()].map((i) => i + 1).find((t) => router.shardFor(String(t)) === shard)!;
  };

  before(async () => {
    stage = await stageFleet({ kind: 'pos', shards: 2, replicas: 1, scale: 0.005 });
    cfg = stage.configPath;
  });
  after(() => stage?.stop());

  it('failover --apply refuses (exit 3) a replica that has not replayed past the fence in time, lifts the fence; --force promotes it and says so', async () => {
    const s0 = stage.fleet.shards[0]!;
    const replica = s0.replicas[0]!;
    await replica.query('SELECT pg_wal_replay_pause()');
    const config = loadConfig(cfg);
    const before = readFileSync(cfg, 'utf8');
    await assert.rejects(failover(config, 's0', { apply: true, replayTimeoutSeconds: 2, ...LIMITS }), (e: Error) => {
      assert.ok(e instanceof UserError && e.kind === 'blocked', `exit 3: ${e.message}`);
      assert.match(e.message, /shard s0: refusing to fail over to .*: the replica had not replayed the old primary's WAL up to its fence \([0-9A-F]+\/[0-9A-F]+\) after 2 s/);
      assert.match(e.hint ?? '', /--force/);
      return true;
    });
    assert.equal(await inRecovery(replica.url()), true, 'not promoted');
    assert.equal(readFileSync(cfg, 'utf8'), before, 'the config is unchanged');
    // the fence is a statement trigger: it fires for an UPDATE of no row too
    await sql(s0.primary.url(), `UPDATE themes SET name = name WHERE false`); // throws while fenced

    const forced = await failover(config, 's0', { apply: true, force: true, replayTimeoutSeconds: 2, ...LIMITS });
    assert.equal(forced.applied, true);
    assert.equal(forced.forced, true);
    assert.equal(forced.caughtUp, false);
    assert.ok(forced.refusals.some((r) => /had not replayed the old primary's WAL up to its fence/.test(r)), forced.refusals.join('; '));
    assert.equal(await inRecovery(replica.url()), false, 'promoted');
    assert.equal(loadConfig(cfg).shards[0]!.primary, replica.url());
  });

  it('a shard failed over to a replica that lacks the follower\'s last commits: migrate --follow refuses (exit 3) instead of resuming past the gap', async () => {
    const s1 = stage.fleet.shards[1]!;
    const replica = s1.replicas[0]!;
    let ready!: (c: ChildProcess) => void;
    const streaming = new Promise<ChildProcess>((r) => (ready = r));
    const follow = () => watchCli(['migrate', '--follow', '--json', '--config', cfg], (e, child) => e.type === 'follow-start' && ready(child));
    const first = follow();
    const child = await Promise.race([streaming, first.then((r) => assert.fail(`the follower ended: ${r.stderr.slice(-3000)}`))]);
    // the replica stops receiving; the follower then commits a change on s1 and the slot confirms it
    await replica.stop('fast');
    const tenant = tenantOn('s1');
    await sql(stage.config.source, `UPDATE restaurants SET name = 'renamed while following' WHERE id = $1`, [tenant]);
    const [{ lsn: written }] = await sql(stage.config.source, 'SELECT pg_current_wal_lsn()::text AS lsn');
    let confirmed = false;
    for (let i = 0; i < 600 && !confirmed; i++) {
      const [s] = await sql(stage.config.source, `SELECT confirmed_flush_lsn >= $1::pg_lsn AS ok FROM pg_replication_slots WHERE slot_name = 'shardctl_migrate'`, [written]);
      confirmed = Boolean(s?.ok);
      if (!confirmed) await sleep(100);
    }
    assert.ok(confirmed, 'the slot confirmed the change');
    assert.equal((await sql(s1.primary.url(), 'SELECT name FROM restaurants WHERE id = $1', [tenant]))[0].name, 'renamed while following');
    child.kill('SIGKILL');
    await first;
    // the primary dies; its replica, which never received the change, is promoted
    await s1.primary.stop('immediate');
    await replica.start();
    const fo = await runCliAsync(['failover', 's1', '--apply', '--force', '--config', cfg]);
    assert.ok(fo.status === 0 || fo.status === 1, fo.stdout + fo.stderr);
    assert.equal(await inRecovery(replica.url()), false, 'promoted');
    assert.notEqual((await sql(replica.url(), 'SELECT name FROM restaurants WHERE id = $1', [tenant]))[0].name, 'renamed while following', 'the promoted server lacks the change');

    let resumed = false;
    const again: CliResult = await watchCli(['migrate', '--follow', '--json', '--config', cfg], (e, c) => {
      if (e.type === 'follow-start') {
        resumed = true;
        c.kill('SIGKILL');
      }
    });
    assert.equal(resumed, false, 'the follower did not resume past the gap');
    assert.equal(again.status, 3, again.stdout + again.stderr);
    assert.match(again.stderr, /shard s1 at [0-9A-F]+\/[0-9A-F]+: behind the position the slot shardctl_migrate has confirmed \([0-9A-F]+\/[0-9A-F]+\)/);
    assert.match(again.stderr, /shardctl migrate --abandon, then shardctl migrate --follow/);
  });
});
