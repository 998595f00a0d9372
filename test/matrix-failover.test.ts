import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { runCliAsync } from './helpers/cli.js';
import { startFollower } from './helpers/watched.js';
import { assertLedger, LedgerWriter, ownerOf } from './helpers/ledger.js';
import { stageLedger, TENANTS, type LedgerStage } from './helpers/ledger-fleet.js';
import { within } from './helpers/within.js';

/**
 * The adversarial matrix, servers going away mid-stream: while `migrate --follow` streams the
 * monolith's acknowledged writes, one shard is restarted and another fails over to its streaming
 * replica (`failover --apply`). The follower either resumes exactly or refuses to resume past a gap
 * (then the way out it names: abandon and copy again); cutover then proves the shards, and the
 * ledger checker proves they hold exactly the acknowledged writes.
 */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


describe('matrix: a shard restarted and a shard failed over while following', () => {
  let stage: LedgerStage;
  before(async () => {
    stage = await stageLedger({ shards: 2, replicas: 1 });
  });
  after(() => stage?.stop());

  it('the follower resumes exactly or refuses; cutover proves the shards; every acknowledged write is there', async () => {
    const cfg = stage.configPath;
    const src = stage.config.source;
    let toShards = false;
    const writer = await LedgerWriter.fromTable(
      src,
      (bid) => {
        const c = stage.reload();
        return toShards ? c.shards.find((s) => s.id === ownerOf(bid, c.shards.map((x) => x.id)))!.primary : src;
      },
      TENANTS,
    );
    writer.start();
    try {
      // a shard restarted under the follower: it reconnects or stops; a rerun resumes
      let f = startFollower(cfg);
      await f.streaming();
      await sleep(500);
      const s1 = stage.fleet.shards[1]!.primary;
      await s1.stop('immediate');
      await s1.start();
      await sleep(1500);
      const afterRestart = await within(f.exit, 3000);
      if (afterRestart) assert.equal(afterRestart.status, 3, `a follower that lost a shard stops with exit 3: ${afterRestart.stderr.slice(-1500)}`);
      else {
        (await f.streaming()).kill('SIGKILL');
        await f.exit;
      }

      // s0 fails over to its replica (the follower is stopped meanwhile, as a DBA would do it)
      const fo = await runCliAsync(['failover', 's0', '--apply', '--config', cfg]);
      assert.equal(fo.status, 0, fo.stdout + fo.stderr);

      f = startFollower(cfg);
      const resumed = await Promise.race([f.streaming().then(() => undefined), f.exit]);
      if (resumed) {
        // refused past a gap: the way out it names
        assert.equal(resumed.status, 3, resumed.stderr);
        assert.match(resumed.stderr, /migrate --abandon/);
        assert.equal((await runCliAsync(['migrate', '--abandon', '--config', cfg])).status, 0);
        f = startFollower(cfg);
        await f.streaming();
      }
      await sleep(1000);
      const cut = await runCliAsync(['cutover', '--max-lag', '10m', '--timeout', '120', '--config', cfg]);
      assert.equal(cut.status, 0, cut.stdout + cut.stderr);
      assert.equal((await f.exit).status, 0);
      toShards = true;
      await sleep(1000);
    } finally {
      await writer.stop();
    }
    assert.ok(writer.stats.commits.length > 100, `the writer committed (${writer.stats.commits.length})`);
    const c = stage.reload();
    await assertLedger(c.shards.map((s) => ({ id: s.id, url: s.primary })), writer, (bid) => ownerOf(bid, c.shards.map((x) => x.id)));
  });
});
