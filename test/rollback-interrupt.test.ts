import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { stageFleet, type Stage } from '../harness/demo/stage.js';
import { runCliAsync, watchCli } from './helpers/cli.js';
import { startWatched } from './helpers/watched.js';
import { sql } from './helpers/fleet.js';
import { stopBetweenRounds } from './helpers/follower.js';

/**
 * Ctrl-C while rollback holds the shard fence (the reverse follower stopped, so the monolith cannot
 * catch up) lifts the fence (exit 130): the shards take writes again and stay the source of truth,
 * the window stays open, and rollback can be run again. Checked with the test's own SQL.
 */
describe('rollback: Ctrl-C inside the shard fence', { timeout: 300_000 }, () => {
  let stage: Stage;
  let cfg: string;
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const shardFences = async () =>
    (await Promise.all(stage.config.shards.map((s) => sql(s.primary, `SELECT tgrelid::regclass::text AS t FROM pg_trigger WHERE tgname = 'shardctl_rollback_fence'`)))).flat();
  const reverseState = async () => (await sql(stage.config.catalog, `SELECT state FROM shardctl.online WHERE slot = 'shardctl_reverse'`))[0]?.state;

  before(async () => {
    stage = await stageFleet({ kind: 'pos', shards: 2, scale: 0.005, fleet: { settings: { wal_level: 'logical' } } });
    cfg = stage.configPath;
    const f = startWatched(['migrate', '--follow', '--config', cfg], 'follow-start', 1);
    await f.started();
    const cut = await runCliAsync(['cutover', '--reverse', '--max-lag', '10m', '--timeout', '60', '--config', cfg]);
    assert.equal(cut.status, 0, cut.stdout + cut.stderr);
    assert.equal((await f.exit).status, 0);
  });
  after(() => stage?.stop());

  it('lifts the shard fence on SIGINT (exit 130); after the follower resumes, rollback succeeds', async () => {
    const back = startWatched(['rollback', '--follow', '--config', cfg], 'reverse-start', stage.config.shards.length);
    const child = await back.started();
    await stopBetweenRounds(stage.config.source, child); // the monolith cannot catch up: rollback waits inside the shard fence
    let fencedSeen = false;
    try {
      const r = await watchCli(['rollback', '--json', '--timeout', '600', '--config', cfg], (e, c) => {
        if (e.type === 'rollback-step' && e.step === 'fenced') {
          fencedSeen = true;
          void (async () => {
            assert.ok((await shardFences()).length > 0, 'the shards are fenced while rollback waits');
            await sleep(500);
            c.kill('SIGINT');
          })();
        }
      });
      assert.ok(fencedSeen, r.stderr);
      assert.equal(r.status, 130, r.stdout + r.stderr);
      assert.match(r.stderr, /rollback interrupted: the shard fence is lifted/);
      assert.deepEqual(await shardFences(), [], 'the shard fence is lifted');
      await sql(stage.config.shards[0]!.primary, `UPDATE restaurants SET name = name || ' after ctrl-c' WHERE id = (SELECT min(id) FROM restaurants)`);
      assert.equal(await reverseState(), 'following', 'the rollback window stays open');
    } finally {
      child.kill('SIGCONT');
    }
    const again = await runCliAsync(['rollback', '--timeout', '120', '--config', cfg]);
    assert.equal(again.status, 0, again.stdout + again.stderr);
    assert.equal((await back.exit).status, 0);
    const names = await sql(stage.config.source, `SELECT 1 FROM restaurants WHERE name LIKE '% after ctrl-c'`);
    assert.equal(names.length, 1, 'the write the shard took after the interrupt reached the monolith');
  });
});
