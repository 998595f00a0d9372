import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { runCliAsync } from './helpers/cli.js';
import { sql } from './helpers/fleet.js';
import { startFollower } from './helpers/watched.js';
import { assertLedger, LedgerWriter, ownerOf } from './helpers/ledger.js';
import { stageLedger, TENANTS, type LedgerStage } from './helpers/ledger-fleet.js';

/**
 * The adversarial matrix, online migration: a writer records every write the monolith acknowledged
 * while `migrate --follow` copies and follows; the follower is SIGKILLed mid-copy and mid-stream, a
 * large transaction lands, REPEATABLE READ and SERIALIZABLE transactions opened before the fence try
 * to write after it; then cutover, and the writer goes on against the shards. The ledger checker
 * (its own SQL and routing) proves the shards hold exactly the acknowledged state.
 */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


const urlOf = (stage: LedgerStage, id: string) => stage.config.shards.find((s) => s.id === id)!.primary;

describe('matrix: migrate --follow + cutover under an acknowledged-writes oracle', () => {
  let stage: LedgerStage;
  before(async () => {
    stage = await stageLedger({ shards: 3 });
  });
  after(() => stage?.stop());

  it('follower killed mid-copy and mid-stream, a large transaction, early RR/SERIALIZABLE writers: the shards hold exactly what was acknowledged', async () => {
    const cfg = stage.configPath;
    const src = stage.config.source;
    let toShards = false;
    const shardIds = stage.config.shards.map((s) => s.id);
    const urls = stage.shardUrls();
    const writer = await LedgerWriter.fromTable(src, (bid) => (toShards ? urls.get(ownerOf(bid, shardIds))! : src), TENANTS);
    writer.start();
    try {
      // SIGKILL during the copy, then twice while streaming
      const first = startFollower(cfg, (e, child) => {
        if (e.type === 'batch') child.kill('SIGKILL');
      });
      assert.equal((await first.exit).status, null, 'killed during the copy');
      for (const wait of [300, 900]) {
        const f = startFollower(cfg);
        const child = await f.streaming();
        await sleep(wait);
        child.kill('SIGKILL');
        assert.equal((await f.exit).status, null);
      }

      // a large transaction: 20,000 rows of one tenant in one commit, acknowledged as a whole
      const big = 5_000_000n;
      await sql(src, `INSERT INTO ledger (bid, k, v) SELECT 3, ${big} + i, i FROM generate_series(1, 20000) i`);
      for (let i = 1n; i <= 20000n; i++) writer.acked.set(big + i, { bid: 3, v: i });

      const last = startFollower(cfg);
      const lastChild = await last.streaming();

      // transactions opened before the fence, writing after it: refused, or carried to the shards
      const early = await Promise.all(['REPEATABLE READ', 'SERIALIZABLE'].map(async (level) => {
        const c = new pg.Client({ connectionString: src });
        await c.connect();
        await c.query(`BEGIN ISOLATION LEVEL ${level}`);
        await c.query('SELECT count(*) FROM ledger');
        return c;
      }));
      const cutting = runCliAsync(['cutover', '--max-lag', '10m', '--timeout', '120', '--config', cfg]);
      for (let i = 0; i < 1200 && !(await sql(src, `SELECT 1 FROM pg_trigger WHERE tgname = 'shardctl_cutover_fence'`)).length; i++) await sleep(25);
      for (const [i, c] of early.entries()) {
        const k = 9_000_000n + BigInt(i);
        try {
          await c.query('INSERT INTO ledger (bid, k, v) VALUES (5, $1, 1)', [k.toString()]);
          await c.query('COMMIT');
          writer.acked.set(k, { bid: 5, v: 1n });
        } catch {
          await c.query('ROLLBACK').catch(() => undefined);
        }
        await c.end();
      }
      const cut = await cutting;
      if (cut.status !== 0) lastChild.kill('SIGKILL');
      assert.equal(cut.status, 0, `cutover: ${cut.stdout}${cut.stderr}`);
      assert.equal((await last.exit).status, 0, 'the follower ends after cutover');
      toShards = true;
      await sleep(1500); // writes go on against the shards
    } finally {
      await writer.stop();
    }
    assert.ok(writer.stats.commits.length > 100, `the writer committed (${writer.stats.commits.length})`);
    await assertLedger(stage.config.shards.map((s) => ({ id: s.id, url: s.primary })), writer, (bid) => ownerOf(bid, shardIds));
    await assert.rejects(sql(src, `INSERT INTO ledger (bid, k, v) VALUES (1, 1, 1)`), /cut over/);

    // the checker itself can fail: one acknowledged row moved to a shard that does not own it
    const [row] = await sql(urlOf(stage, ownerOf(2, shardIds)), `DELETE FROM ledger WHERE k = (SELECT min(k) FROM ledger WHERE bid = 2) RETURNING k::text, v::text`);
    const wrong = shardIds.find((id) => id !== ownerOf(2, shardIds))!;
    await sql(urlOf(stage, wrong), `SET session_replication_role = replica; INSERT INTO ledger (bid, k, v) VALUES (2, ${row.k}, ${row.v})`);
    await assert.rejects(assertLedger(stage.config.shards.map((s) => ({ id: s.id, url: s.primary })), writer, (bid) => ownerOf(bid, shardIds)), new RegExp(`key ${row.k}: acknowledged v=${row.v} on s\\d, found v=${row.v} \\(tenant 2\\) on ${wrong}`));
  });
});
