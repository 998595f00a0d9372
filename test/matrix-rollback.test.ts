import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { runCliAsync } from './helpers/cli.js';
import { sql } from './helpers/fleet.js';
import { startWatched } from './helpers/watched.js';
import { assertLedger, LedgerWriter, ownerOf } from './helpers/ledger.js';
import { stageLedger, TENANTS, type LedgerStage } from './helpers/ledger-fleet.js';

/**
 * The adversarial matrix, the rollback window: migrate --follow and cutover --reverse, then the
 * writer goes on against the shards while `rollback --follow` streams them back (SIGKILLed once and
 * restarted); rollback, and the writer goes on against the monolith. The checker proves the
 * monolith holds exactly the acknowledged ledger — every write the shards took came back.
 */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


describe('matrix: cutover --reverse + rollback under an acknowledged-writes oracle', () => {
  let stage: LedgerStage;
  before(async () => {
    stage = await stageLedger({ shards: 2 });
  });
  after(() => stage?.stop());

  it('writes on the shards during the rollback window all reach the monolith, through a killed and restarted reverse follower', async () => {
    const cfg = stage.configPath;
    const src = stage.config.source;
    const ids = stage.config.shards.map((s) => s.id);
    const urls = stage.shardUrls();
    let target: 'monolith' | 'shards' = 'monolith';
    const writer = await LedgerWriter.fromTable(src, (bid) => (target === 'shards' ? urls.get(ownerOf(bid, ids))! : src), TENANTS);
    writer.start();
    try {
      const f = startWatched(['migrate', '--follow', '--config', cfg], 'follow-start');
      await f.started();
      const cut = await runCliAsync(['cutover', '--reverse', '--max-lag', '10m', '--timeout', '120', '--config', cfg]);
      assert.equal(cut.status, 0, cut.stdout + cut.stderr);
      assert.equal((await f.exit).status, 0);
      target = 'shards';

      const back = startWatched(['rollback', '--follow', '--config', cfg], 'reverse-start', ids.length);
      (await back.started()).kill('SIGKILL');
      await back.exit;
      await sleep(500);
      const again = startWatched(['rollback', '--follow', '--config', cfg], 'reverse-start', ids.length);
      await again.started();
      await sleep(1000);
      const rb = await runCliAsync(['rollback', '--timeout', '120', '--config', cfg]);
      assert.equal(rb.status, 0, rb.stdout + rb.stderr);
      assert.equal((await again.exit).status, 0, 'the reverse follower ends after rollback');
      target = 'monolith';
      await sleep(1000);
    } finally {
      await writer.stop();
    }
    assert.ok(writer.stats.commits.length > 100, `the writer committed (${writer.stats.commits.length})`);
    await assertLedger([{ id: 'monolith', url: src }], writer, () => 'monolith');
    for (const s of stage.config.shards) {
      await assert.rejects(sql(s.primary, 'INSERT INTO ledger (bid, k, v) VALUES (1, 2, 3)'), /rolled back|refused|fence/, `${s.id} refuses writes after rollback`);
    }
  });
});
