import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { migrate } from '../src/index.js';
import { runCli, runCliAsync, runCliKilledAtAsync } from './helpers/cli.js';
import { sql } from './helpers/fleet.js';
import { LedgerWriter, longestGap } from './helpers/ledger.js';
import { catalogRoutedWriter, checkLedger, ledgerOwner, stageLedger, TENANTS, type LedgerStage } from './helpers/ledger-fleet.js';

/**
 * The adversarial matrix, moves: an application routes every write through the catalog's SQL
 * function (`shardctl.shard_for_key`, as an application in any language would) while units move —
 * an online pin killed mid-move and resumed, REPEATABLE READ and SERIALIZABLE writers opened on the
 * old shard before a shard's first move, add-shard + rebalance, remove-shard. After each, the ledger
 * checker (its own SQL and routing) proves every acknowledged write is on the shard that owns it,
 * once, and nothing else is.
 */
describe('matrix: online moves under a live-routing writer and an acknowledged-writes oracle', () => {
  let stage: LedgerStage;
  let writer: LedgerWriter;
  let close: (() => Promise<void>) | undefined;
  const urls = new Map<string, string>();

  const shardsNow = () => stage.reload().shards.map((s) => ({ id: s.id, url: s.primary }));
  const owner = () => ledgerOwner(stage);
  const check = () => checkLedger(stage, writer);

  before(async () => {
    stage = await stageLedger({ shards: 3 });
    assert.equal((await migrate(stage.config)).ok, true);
    for (const x of shardsNow()) urls.set(x.id, x.url);
    ({ writer, close } = await catalogRoutedWriter(stage));
  });
  after(async () => {
    await close?.();
    await stage?.stop();
  });

  it('with no move, the live-routing writer lands every acknowledged write', async () => {
    await new Promise((r) => setTimeout(r, 3000));
    await check();
  });

  it("a shard's first move: REPEATABLE READ and SERIALIZABLE writers opened before it are refused on the old shard", async () => {
    const tenant = TENANTS.find((t) => owner()(t) === 's0')!;
    const old = urls.get('s0') ?? shardsNow()[0]!.url;
    const early = await Promise.all(['REPEATABLE READ', 'SERIALIZABLE'].map(async (level) => {
      const c = new pg.Client({ connectionString: old });
      await c.connect();
      await c.query(`BEGIN ISOLATION LEVEL ${level}`);
      await c.query('SELECT count(*) FROM ledger');
      return c;
    }));
    const r = runCli(['pin', String(tenant), 's1', '--apply', '--config', stage.configPath]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    for (const [i, c] of early.entries()) {
      const k = 8_000_000n + BigInt(i);
      try {
        await c.query('INSERT INTO ledger (bid, k, v) VALUES ($1, $2, 1)', [tenant, k.toString()]);
        await c.query('COMMIT');
        writer.acked.set(k, { bid: tenant, v: 1n }); // acknowledged: the checker finds it where it is
      } catch (e) {
        assert.match((e as Error).message, /could not serialize|moved|being moved/);
      }
      await c.end();
    }
    await check();
  });

  it('an online pin SIGKILLed after each journaled step, then resumed: exact', async () => {
    for (const step of ['target-fenced', 'streaming', 'caught-up', 'flipped'] as const) {
      const cur = owner();
      const tenant = TENANTS.find((t) => !stage.pins()[String(t)])!;
      const to = ['s0', 's1', 's2'].find((s) => s !== cur(tenant))!;
      const killed = await runCliKilledAtAsync(step, ['pin', String(tenant), to, '--apply', '--config', stage.configPath]);
      assert.equal(killed.status, null, `killed after ${step}: ${killed.stderr.slice(-1500)}`);
      const again = await runCliAsync(['rebalance', '--apply', '--config', stage.configPath]);
      assert.equal(again.status, 0, `resumed after ${step}: ${again.stdout}${again.stderr}`);
      await check();
    }
  });

  it('add-shard + rebalance --apply, then remove-shard --apply: every acknowledged write where it belongs', async () => {
    const fresh = await stage.fleet.addShard();
    await sql(fresh.primary.url(), 'CREATE TABLE ledger (bid integer NOT NULL, k bigint PRIMARY KEY, v bigint NOT NULL)');
    const from = writer.stats.commits.length;
    const t0 = Date.now();
    const add = await runCliAsync(['add-shard', '--id', fresh.id, '--primary', fresh.primary.url(), '--apply', '--config', stage.configPath]);
    assert.equal(add.status, 0, add.stdout + add.stderr);
    await check();
    assert.ok(writer.stats.commits.length > from, 'the writer kept committing');
    const gap = longestGap(writer.stats.commits, t0, Date.now());
    assert.ok(gap < 30_000, `longest pause in the writer's commits during add-shard: ${gap} ms`);

    const rm = await runCliAsync(['remove-shard', fresh.id, '--apply', '--config', stage.configPath]);
    assert.equal(rm.status, 0, rm.stdout + rm.stderr);
    await check();
  });
});
