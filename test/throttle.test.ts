import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { stageFleet, type Stage } from '../harness/demo/stage.js';
import type { ChildProcess } from 'node:child_process';
import { runCli, runCliAsync, watchCli } from './helpers/cli.js';
import { assertExact } from './helpers/exact.js';
import { sql } from './helpers/fleet.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The copy pauses between batches while production asks it to: on demand (`shardctl throttle on`,
 * from another process) and while a shard's streaming replica lags (its replay paused), and goes on
 * when that ends. Progress is counted from the migrate's own 'batch' events and the end state is
 * checked with the test's own SQL (assertExact).
 */
describe('throttle: the copy pauses on demand and on replica lag', { timeout: 300_000 }, () => {
  let stage: Stage;
  let cfg: string;
  before(async () => {
    // five restaurants (two on s0, one of them the 4x hot one; three on s1): thousands of 20-row batches still
    stage = await stageFleet({ kind: 'pos', shards: 2, replicas: 1, scale: 0.005, fleet: { serverSettings: { source: { wal_level: 'logical' } } } });
    cfg = stage.configPath;
  });
  after(() => stage?.stop());

  /** Starts migrate with --json; counts its batches and keeps its throttle events. */
  const startMigrate = (args: string[]) => {
    const seen = { batches: 0, throttled: [] as { reason: string; detail: string }[], resumed: 0 };
    const exit = watchCli(['migrate', '--json', '--concurrency', '1', '--batch-rows', '20', ...args, '--config', cfg], (e) => {
      if (e.type === 'batch') seen.batches++;
      if (e.type === 'throttled') seen.throttled.push(e as unknown as { reason: string; detail: string });
      if (e.type === 'throttle-resumed') seen.resumed++;
    });
    return { seen, exit };
  };
  const until = async (what: string, ok: () => boolean) => {
    for (let i = 0; i < 600 && !ok(); i++) await sleep(100);
    assert.ok(ok(), `timed out waiting for ${what}`);
  };

  it('throttle on pauses the copy before its first batch; throttle off lets it finish', async () => {
    const on = await runCliAsync(['throttle', 'on', '--for', '10m', '--config', cfg]);
    assert.equal(on.status, 0, on.stderr);
    assert.match(on.stdout, /throttle on \(set by .*, until \d{4}-/);
    const gauge = async () => (await runCliAsync(['health', '--prometheus', '--config', cfg])).stdout.match(/^shardctl_throttled\{reason="on-demand"\} (\d)$/m)?.[1];
    assert.equal(await gauge(), '1', 'health exports the on-demand throttle');
    const m = startMigrate([]);
    await until('the throttled event', () => m.seen.throttled.length > 0);
    assert.equal(m.seen.throttled[0]!.reason, 'on-demand');
    assert.match(m.seen.throttled[0]!.detail, /on demand \(shardctl throttle on by /);
    await sleep(3000);
    assert.equal(m.seen.batches, 0, 'no batch while throttled');
    const off = await runCliAsync(['throttle', 'off', '--config', cfg]);
    assert.equal(off.status, 0, off.stderr);
    assert.match(off.stdout, /throttle off/);
    assert.equal(await gauge(), '0', 'health exports the throttle lifted');
    const r = await m.exit;
    assert.equal(r.status, 0, r.stderr.slice(-2000));
    assert.ok(m.seen.batches > 0 && m.seen.resumed === 1, JSON.stringify(m.seen));
    await assertExact(stage.config);
  });

  it("a shard replica whose replay is paused pauses the copy ('throttled: replica … lag'); resuming replay resumes it", async () => {
    const replica = stage.config.shards[0]!.replicas[0]!;
    await sql(replica, 'SELECT pg_wal_replay_pause()');
    let resumed = false;
    try {
      // the byte bound, not the time bound, is under test: on a loaded machine the seconds since the
      // replica's last replayed commit could pass the default time bound first
      const m = startMigrate(['--resync', '--throttle-lag-bytes', '64KB', '--throttle-lag', '1h']);
      await until('the throttled event', () => m.seen.throttled.length > 0);
      assert.equal(m.seen.throttled[0]!.reason, 'replica-lag');
      assert.match(m.seen.throttled[0]!.detail, /^replica 1 of shard s0 lag: [\d.]+ MB behind \(bound 0\.1 MB\), replay paused$/);
      await sleep(3000); // a batch in flight when the lag was seen may still finish
      const paused = m.seen.batches;
      await sleep(3000);
      assert.equal(m.seen.batches, paused, 'no batch starts while the replica lags');
      await sql(replica, 'SELECT pg_wal_replay_resume()');
      resumed = true;
      const r = await m.exit;
      assert.equal(r.status, 0, r.stderr.slice(-2000));
      assert.ok(m.seen.batches > paused && m.seen.resumed >= 1, JSON.stringify(m.seen));
    } finally {
      if (!resumed) await sql(replica, 'SELECT pg_wal_replay_resume()').catch(() => undefined);
    }
    await assertExact(stage.config);
  });

  it('throttle on pauses the follower between applied batches; off lets the change through', async () => {
    let child: ChildProcess | undefined;
    const throttled: string[] = [];
    const exit = watchCli(['migrate', '--follow', '--json', '--config', cfg], (e, c) => {
      if (e.type === 'follow-start') child = c;
      if (e.type === 'throttled') throttled.push(e.detail as string);
    });
    try {
      await until('the follower streams', () => child !== undefined);
      assert.equal((await runCliAsync(['throttle', 'on', '--config', cfg])).status, 0);
      await until('the follower throttled', () => throttled.length > 0);
      assert.match(throttled[0]!, /^on demand \(shardctl throttle on by .* until shardctl throttle off\)$/);
      await sql(stage.config.source, `UPDATE restaurants SET name = 'while throttled' WHERE id = 1`);
      const onShards = async () => (await Promise.all(stage.config.shards.map((s) => sql(s.primary, `SELECT 1 FROM restaurants WHERE id = 1 AND name = 'while throttled'`)))).flat().length;
      await sleep(3000);
      assert.equal(await onShards(), 0, 'the throttled follower applies nothing');
      assert.equal((await runCliAsync(['throttle', 'off', '--config', cfg])).status, 0);
      for (let i = 0; i < 600 && (await onShards()) === 0; i++) await sleep(100);
      assert.equal(await onShards(), 1, 'after throttle off the change reaches its shard');
    } finally {
      child?.kill('SIGINT');
      await exit;
      assert.equal(runCli(['migrate', '--abandon', '--config', cfg]).status, 0);
    }
  });
});
