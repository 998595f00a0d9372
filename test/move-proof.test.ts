import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { migrate } from '../src/index.js';
import { moveStreamNames } from '../src/rebalance/online.js';
import { runCliAsync, runCliKilledAtAsync, watchCli, type CliResult } from './helpers/cli.js';
import { sql } from './helpers/fleet.js';
import { assertLedger, LedgerWriter, ownerOf } from './helpers/ledger.js';
import { stageLedger, TENANTS, type LedgerStage } from './helpers/ledger-fleet.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MOVE_LOCK = 0x4d6f7665; // online.ts: one applier per move slot
/** the tenant the first two tests move: many more rows than any test changes */
const BIG = 3;
const BIG_ROWS = 20_000;

async function session(url: string, bypass = false): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url, application_name: 'move-proof-test' });
  c.on('error', () => undefined);
  await c.connect();
  if (bypass) await c.query(`SET shardctl.bypass = 'on'`); // as shardctl's own sessions: the fence does not stop it
  return c;
}

/**
 * An online move proves its copy while writes go on, so that inside the fence it compares only the
 * rows changed since the last proof. Staged with locks: the applier lock holds the move before its
 * catch-up (the test writes N rows, proven before the fence), a key-share lock on the old shard's
 * fence_epoch holds its fence (the test writes M rows with a session the fence does not stop: they
 * come after the last proof). The oracle is the test's own: the writes it made, checked with its own
 * SQL and routing (helpers/ledger.ts); the counts the move reports are compared with N and M.
 */
describe('online move: the copy is proven while writes go on; the fence checks only what changed since', { timeout: 600_000 }, () => {
  let stage: LedgerStage;
  let oracle: LedgerWriter;
  const ids = () => stage.reload().shards.map((s) => s.id);
  const owner = () => {
    const shards = ids();
    const pins = stage.pins();
    return (bid: number) => ownerOf(bid, shards, pins);
  };
  const url = (id: string) => stage.shardUrls().get(id)!;
  const check = () => assertLedger(stage.reload().shards.map((s) => ({ id: s.id, url: s.primary })), oracle, owner());
  const placed = async (unit: string) => (await sql(stage.config.catalog, 'SELECT shard FROM shardctl.placements WHERE unit = $1', [unit]))[0]?.shard as string;

  before(async () => {
    stage = await stageLedger({ shards: 2 });
    await sql(stage.config.source, `INSERT INTO ledger (bid, k, v) SELECT $1, 50000000 + i, i FROM generate_series(1, ${BIG_ROWS}) i`, [BIG]);
    assert.equal((await migrate(stage.config)).ok, true);
    oracle = await LedgerWriter.fromTable(stage.config.source, () => assert.fail('the oracle does not write here'), TENANTS);
  });
  after(() => stage?.stop());

  /** Updates `keys` of the tenant on `c`, recording each acknowledged write in the oracle. */
  const update = async (c: pg.Client, keys: bigint[], v: bigint) => {
    for (const k of keys) {
      const r = await c.query('UPDATE ledger SET v = $2 WHERE k = $1', [k.toString(), v.toString()]);
      assert.equal(r.rowCount, 1);
      oracle.acked.set(k, { bid: BIG, v });
    }
  };

  /**
   * Pins BIG to the other shard, with two pauses: `beforeCatchUp` runs once the copy is committed
   * and before the stream is applied; `fenceWaiting` once the move waits for the old shard's fence
   * (its last proof made), before the fence is let in.
   */
  async function stagedPin(hooks: { beforeCatchUp: (from: string, to: string) => Promise<void>; fenceWaiting: (from: string, to: string) => Promise<void> }) {
    const from = owner()(BIG);
    const to = ids().find((s) => s !== from)!;
    const slot = moveStreamNames(String(BIG)).slot;
    const gate = await session(url(to));
    const epoch = await session(url(from));
    await gate.query('SELECT pg_advisory_lock($1, hashtext($2))', [MOVE_LOCK, slot]);
    let streaming!: () => void;
    const copied = new Promise<void>((r) => (streaming = r));
    const events: { type: string; [k: string]: unknown }[] = [];
    const pin = watchCli(['pin', String(BIG), to, '--apply', '--json', '--config', stage.configPath], (e) => {
      events.push(e);
      if (e.type === 'step' && e.step === 'streaming') streaming();
    });
    let r: CliResult;
    try {
      await Promise.race([copied, pin.then((x) => assert.fail(`the pin ended before streaming: ${x.stdout}${x.stderr}`))]);
      await hooks.beforeCatchUp(from, to);
      await epoch.query('BEGIN');
      await epoch.query('SELECT * FROM shardctl.fence_epoch FOR KEY SHARE');
      await gate.query('SELECT pg_advisory_unlock($1, hashtext($2))', [MOVE_LOCK, slot]);
      let waiting = false;
      for (let i = 0; i < 1200 && !waiting; i++) {
        waiting = (await sql(url(from), `SELECT 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE NOT l.granted AND a.application_name LIKE 'shardctl%'`)).length > 0;
        if (!waiting) await sleep(50);
      }
      assert.ok(waiting, 'the move fences the old shard');
      await hooks.fenceWaiting(from, to);
      await epoch.query('COMMIT');
      r = await pin;
    } finally {
      await epoch.query('ROLLBACK').catch(() => undefined);
      await Promise.all([gate, epoch].map((s) => s.end().catch(() => undefined)));
    }
    return { from, to, r, moved: events.find((e) => e.type === 'moved') };
  }

  it('rows changed before the last proof are proven outside the fence; inside it only the M rows changed after it are compared', async () => {
    const proven = [...Array(30).keys()].map((i) => 50_000_001n + BigInt(i));
    const late = [...Array(7).keys()].map((i) => 50_000_101n + BigInt(i));
    const { from, to, r, moved } = await stagedPin({
      beforeCatchUp: async (from) => {
        const c = await session(url(from));
        await update(c, proven, 7n).finally(() => c.end());
      },
      fenceWaiting: async (from) => {
        const c = await session(url(from), true);
        await update(c, late, 8n).finally(() => c.end());
      },
    });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.ok(moved, r.stderr);
    assert.equal(moved.provenRows, proven.length, 'the rows changed before the fence were proven outside it');
    assert.equal(moved.checkedRows, late.length, 'inside the fence: only the rows changed since the last proof');
    const size = Number((await sql(url(to), 'SELECT count(*) AS n FROM ledger WHERE bid = $1', [BIG]))[0].n);
    assert.ok(size > BIG_ROWS, `the unit holds ${size} ledger rows`);
    assert.equal(await placed(String(BIG)), to);
    assert.deepEqual(await sql(url(from), 'SELECT k FROM ledger WHERE bid = $1', [BIG]), []);
    await check();
  });

  it('a row changed on the new shard after the last proof makes the move refuse; the unit stays writable on its old shard', async () => {
    const x = 50_000_201n;
    const { from, to, r } = await stagedPin({
      beforeCatchUp: async () => undefined,
      fenceWaiting: async (from, to) => {
        const c = await session(url(from), true);
        await update(c, [x], 9n).finally(() => c.end());
        // once the move applied it on the new shard, the test changes it there (as no writer can: fenced);
        // the applier commits a batch at a later source commit: an empty transaction with a message is one
        let applied = false;
        for (let i = 0; i < 100 && !applied; i++) {
          await sleep(250);
          await sql(url(from), `SELECT pg_logical_emit_message(true, 'move-proof-test', 'tick')`);
          applied = (await sql(url(to), 'SELECT 1 FROM ledger WHERE k = $1 AND v = 9', [x.toString()])).length > 0;
        }
        assert.ok(applied, 'the move applied the change on the new shard');
        const t = await session(url(to), true);
        await t.query('UPDATE ledger SET v = 666 WHERE k = $1', [x.toString()]).finally(() => t.end());
      },
    });
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`unit ${BIG} differs between shard ${from} and shard ${to} in 1 of the 1 rows changed since its copy was last proven: table public\\.ledger key \\(${x}\\): differs between the shards.*the move was undone: unit ${BIG} stays on shard ${from}, writable there`));
    assert.equal(await placed(String(BIG)), from);
    for (const s of [from, to]) assert.deepEqual(await sql(url(s), 'SELECT unit FROM shardctl.fenced_units WHERE unit = $1', [String(BIG)]), [], `no fence on ${s}`);
    assert.deepEqual(await sql(url(to), 'SELECT k FROM ledger WHERE bid = $1', [BIG]), [], 'the copy is gone from the new shard');
    const c = await session(url(from));
    await update(c, [x], 10n).finally(() => c.end()); // writable where it is placed
    // the pin was written to the config before the move: point it back where the unit stays
    const back = await runCliAsync(['pin', String(BIG), from, '--apply', '--config', stage.configPath]);
    assert.equal(back.status, 0, back.stdout + back.stderr);
    await check();
  });

  it('SIGKILL after a proof while writes go on, after the proof inside the fence, after caught-up: the rerun completes exactly', async () => {
    const catalog = await session(stage.config.catalog);
    const urls = new Map<string, string>();
    const route = async (bid: number) => {
      const shard = (await catalog.query('SELECT shardctl.shard_for_key($1) AS s', [String(bid)])).rows[0].s as string;
      if (!urls.has(shard)) for (const [id, u] of stage.shardUrls()) urls.set(id, u);
      return urls.get(shard)!;
    };
    const writer = new LedgerWriter(route, TENANTS, { firstKey: 90_000_000n });
    for (const [k, s] of oracle.acked) writer.acked.set(k, s);
    oracle = writer;
    writer.start();
    try {
      for (const [i, step] of (['proving', 'proved', 'caught-up'] as const).entries()) {
        const tenant = TENANTS.filter((t) => t !== BIG)[i]!;
        const to = ids().find((s) => s !== owner()(tenant))!;
        const killed = await runCliKilledAtAsync(step, ['pin', String(tenant), to, '--apply', '--config', stage.configPath]);
        assert.equal(killed.status, null, `killed after ${step}: ${killed.stdout}${killed.stderr.slice(-1500)}`);
        const again = await runCliAsync(['rebalance', '--apply', '--config', stage.configPath]);
        assert.equal(again.status, 0, `resumed after ${step}: ${again.stdout}${again.stderr}`);
        await writer.pause();
        await check();
        writer.start();
      }
    } finally {
      await writer.stop();
      await catalog.end();
    }
    await check();
  });
});
