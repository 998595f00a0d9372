import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { stageFleet, type Stage } from '../harness/demo/stage.js';
import { runCliAsync, watchCli } from './helpers/cli.js';
import { sql } from './helpers/fleet.js';
import { startFollower, stopBetweenRounds, type Follower } from './helpers/follower.js';

/**
 * Cutover never leaves the monolith fenced behind it: it refuses to fence a follower that lags
 * (nothing fenced), and Ctrl-C while it holds the fence lifts it (exit 130) and leaves the online
 * migration following, so cutover can be run again. Checked with the test's own SQL: the fence's
 * triggers on the monolith, an application write, the catalog's record.
 */
describe('cutover: lag gate and Ctrl-C inside the fence', { timeout: 300_000 }, () => {
  let stage: Stage;
  let cfg: string;
  let follower: Follower;
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const fenceTriggers = async () => (await sql(stage.config.source, `SELECT tgrelid::regclass::text AS t FROM pg_trigger WHERE tgname = 'shardctl_cutover_fence'`)).map((r) => r.t);
  const onlineState = async () => (await sql(stage.config.catalog, `SELECT state FROM shardctl.online`))[0]?.state;

  const stopFollower = () => stopBetweenRounds(stage.config.source, follower.child);

  before(async () => {
    stage = await stageFleet({ kind: 'pos', shards: 2, scale: 0.01, fleet: { serverSettings: { source: { wal_level: 'logical' } } } });
    cfg = stage.configPath;
    follower = await startFollower(cfg);
  });
  after(async () => {
    follower?.child.kill('SIGCONT');
    follower?.child.kill('SIGKILL');
    await stage?.stop();
  });

  it('refuses to fence when the follower lags more than --max-lag, naming the lag (exit 3, nothing fenced)', async () => {
    await stopFollower(); // the follower stops applying: its lag grows with the clock
    try {
      await sleep(3000);
      const r = await runCliAsync(['cutover', '--max-lag', '1s', '--timeout', '3', '--config', cfg]);
      assert.equal(r.status, 3, r.stdout + r.stderr);
      assert.match(r.stderr, /the follower is [\d.]+ s behind \(bound 1 s\); not fencing/);
      assert.deepEqual(await fenceTriggers(), [], 'nothing was fenced');
      assert.equal(await onlineState(), 'following');
    } finally {
      follower.child.kill('SIGCONT');
    }
  });

  it('Ctrl-C while the fence waits for a stopped follower lifts the fence (exit 130); a rerun cuts over', async () => {
    await stopFollower(); // the shards cannot catch up: cutover waits inside the fence
    let fencedSeen = false;
    try {
      const r = await watchCli(['cutover', '--json', '--max-lag', '1h', '--timeout', '600', '--config', cfg], (e, child) => {
        if (e.type === 'cutover-step' && e.step === 'fenced') {
          fencedSeen = true;
          // the fence is committed on the monolith now; interrupt a moment later, mid-wait
          void (async () => {
            assert.ok((await fenceTriggers()).length > 0, 'the monolith is fenced while cutover waits');
            await sleep(500);
            child.kill('SIGINT');
          })();
        }
      });
      assert.ok(fencedSeen, r.stderr);
      assert.equal(r.status, 130, r.stdout + r.stderr);
      assert.match(r.stderr, /cutover interrupted: the fence is lifted, the monolith takes writes again/);
      assert.deepEqual(await fenceTriggers(), [], 'the fence is lifted');
      await sql(stage.config.source, `UPDATE restaurants SET name = name || ' after ctrl-c' WHERE id = 1`);
      assert.equal(await onlineState(), 'following', 'the online migration still follows');
    } finally {
      follower.child.kill('SIGCONT');
    }
    const again = await runCliAsync(['cutover', '--max-lag', '10m', '--timeout', '120', '--config', cfg]);
    assert.equal(again.status, 0, again.stdout + again.stderr);
    const end = await follower.exit;
    assert.equal(end.status, 0, end.stderr.slice(-2000));
    const renamed = await Promise.all(stage.config.shards.map((s) => sql(s.primary, `SELECT name FROM restaurants WHERE id = 1`)));
    assert.match(renamed.flat()[0]?.name ?? '', / after ctrl-c$/, 'the write taken after the interrupt reached the shards');
  });
});
