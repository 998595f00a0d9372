import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { stageFleet, type Stage } from '../harness/demo/stage.js';
import { restaurantCount } from '../harness/fixtures/index.js';
import { runCli, runCliAsync } from './helpers/cli.js';
import { startFollower } from './helpers/watched.js';
import { assertExact } from './helpers/exact.js';
import { sql } from './helpers/fleet.js';
import { ID_STRIDE } from '../src/sequences/align.js';
import { startWriter } from '../harness/fixtures/pos-writer.js';
import pg from 'pg';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parse, stringify } from 'yaml';

const SCALE = 0.01;

const slots = (url: string) => sql(url, `SELECT slot_name, active FROM pg_replication_slots`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('online migrate (--follow) and cutover: POS fixture under write load', () => {
  let stage: Stage;
  let cfg: string;
  before(async () => {
    stage = await stageFleet({ kind: 'pos', shards: 3, scale: SCALE, fleet: { serverSettings: { source: { wal_level: 'logical' } } } });
    cfg = stage.configPath;
  });
  after(() => stage?.stop());

  it('cutover that cannot catch up in time lifts the fence: the monolith stays writable (exit 3)', async () => {
    const f = startFollower(cfg);
    const child = await f.streaming();
    const health = JSON.parse((await runCliAsync(['health', '--json', '--config', cfg])).stdout);
    const check = health.catalog.checks.find((c: { check: string }) => c.check === 'follower');
    assert.match(check?.message ?? '', /^online migration following: lag [\d.]+ MB, [\d.]+ s; the slot retains [\d.]+ MB of WAL on the monolith$/);
    child.kill('SIGSTOP'); // the follower stops applying; its walsender stays connected
    try {
      const r = runCli(['cutover', '--max-lag', '10m', '--timeout', '2s', '--config', cfg]);
      assert.equal(r.status, 3, r.stdout + r.stderr);
      assert.match(r.stderr, /did not catch up with the fence in time.*the fence is lifted/);
      await sql(stage.config.source, `UPDATE restaurants SET name = name || '' WHERE id = 1`);
    } finally {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
    }
    await f.exit;
  });

  it('abandon drops the slot and the publication', async () => {
    assert.equal((await slots(stage.config.source)).length, 1, 'the killed follower left its slot (as it should)');
    const r = runCli(['migrate', '--abandon', '--config', cfg]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /slot and publication dropped/);
    assert.deepEqual(await slots(stage.config.source), []);
    assert.deepEqual(await sql(stage.config.source, 'SELECT pubname FROM pg_publication'), []);
  });

  it('what logical replication cannot carry stops the follower (exit 3) and keeps the slot: TRUNCATE, then DDL', async () => {
    const src = stage.config.source;
    for (const [change, expected] of [
      [['TRUNCATE analytics_events'], /TRUNCATE of public\.analytics_events cannot be streamed.*The follower stopped; the slot is kept/],
      [
        ['ALTER TABLE themes ADD COLUMN mood text', `INSERT INTO themes (restaurant_id, name, is_default, colors, font, updated_at, mood) VALUES (1, 'x', false, '{}', 'f', now(), 'sunny')`],
        /table public\.themes changed while following \(added mood\); logical replication does not carry DDL\. The follower stopped; the slot is kept/,
      ],
    ] as const) {
      const f = startFollower(cfg);
      await f.streaming();
      for (const q of change) await sql(src, q);
      const r = await f.exit;
      assert.equal(r.status, 3, r.stderr);
      assert.match(r.stderr, expected);
      assert.equal((await slots(src)).length, 1, 'the slot is kept');
      assert.equal(runCli(['migrate', '--abandon', '--config', cfg]).status, 0);
    }
    await sql(src, 'ALTER TABLE themes DROP COLUMN mood');
  });

  it('preflight refuses a configured table without a primary key or REPLICA IDENTITY FULL (exit 3), naming it and the fix', async () => {
    const src = stage.config.source;
    await sql(src, 'CREATE TABLE audit_nopk (restaurant_id bigint NOT NULL, note text)');
    try {
      const doc = parse(readFileSync(cfg, 'utf8'));
      doc.tables.push({ name: 'audit_nopk', key: 'restaurant_id' });
      const withLog = join(dirname(cfg), 'shardctl-nopk.yaml');
      writeFileSync(withLog, stringify(doc), { mode: 0o600 });
      const r = runCli(['migrate', '--follow', '--config', withLog]);
      assert.equal(r.status, 3, r.stdout + r.stderr);
      assert.match(r.stderr, /table public\.audit_nopk has no primary key.*fix: ALTER TABLE "public"\."audit_nopk" REPLICA IDENTITY FULL;.*ADD PRIMARY KEY/);
      assert.deepEqual(await slots(src), [], 'nothing was created');
    } finally {
      await sql(src, 'DROP TABLE audit_nopk');
    }
  });

  it('the follower SIGKILLed 12 times under write load, then cutover: the shards hold exactly the final monolith', async () => {
    const writer = startWriter(stage.config.source, restaurantCount(SCALE));
    let seed = 7;
    const random = (n: number) => ((seed = (seed * 48271) % 2147483647), seed % n);
    try {
      // the first run is killed during its copy; it then starts over with a new slot
      const first = startFollower(cfg, (e, child) => {
        if (e.type === 'batch') child.kill('SIGKILL');
      });
      const killed = await first.exit;
      assert.equal(killed.status, null, `killed during the copy: ${killed.stderr.slice(-3000)}`);
      for (let i = 0; i < 11; i++) {
        const f = startFollower(cfg);
        const child = await f.streaming();
        await sleep(150 + random(900));
        child.kill('SIGKILL');
        const r = await f.exit;
        assert.equal(r.status, null, `run ${i + 2}: ${r.stderr.slice(-3000)}`);
      }
      // the restarts left a backlog: the load goes on, lighter, until the follower has caught up
      writer.setPause(250);
      let lag = Infinity;
      const last = startFollower(cfg, (e) => {
        if (e.type === 'follow-progress') lag = (e as { lagBytes?: number }).lagBytes ?? lag;
      });
      const lastChild = await last.streaming();
      for (let i = 0; i < 300 && lag > 256 * 1024; i++) await sleep(1000);

      // cutover proves the rows changed while following: a changed row tampered on its shard is found
      const src = stage.config.source;
      await sql(src, `UPDATE restaurants SET name = 'renamed while following' WHERE id = 2`);
      let holder: string | undefined;
      for (let i = 0; i < 600 && !holder; i++) {
        for (const s of stage.config.shards) if ((await sql(s.primary, `SELECT 1 FROM restaurants WHERE id = 2 AND name = 'renamed while following'`)).length) holder = s.primary;
        if (!holder) await sleep(100);
      }
      assert.ok(holder, 'the follower applied the rename');
      await sql(holder, `UPDATE restaurants SET name = 'tampered' WHERE id = 2`);
      const refused = await runCliAsync(['cutover', '--max-lag', '10m', '--timeout', '2m', '--config', cfg]);
      assert.equal(refused.status, 3, refused.stdout + refused.stderr);
      assert.match(refused.stderr, /differ in 1 of the \d+ rows changed while following.*table public\.restaurants key \(2\): differs on shard/s);
      await sql(holder, `UPDATE restaurants SET name = 'renamed while following' WHERE id = 2`);

      // transactions opened on the monolith before the fence: one that wrote before it commits (the
      // fence waits for it) and its row reaches the shards; REPEATABLE READ and SERIALIZABLE ones that
      // write only after the fence are refused, whatever their snapshot
      const early = await Promise.all(['READ COMMITTED', 'REPEATABLE READ', 'SERIALIZABLE'].map(async (level) => {
        const c = new pg.Client({ connectionString: src });
        await c.connect();
        await c.query(`BEGIN ISOLATION LEVEL ${level}`);
        await c.query('SELECT count(*) FROM orders'); // the snapshot is taken before the fence
        return c;
      }));
      const [wrote, rr, ser] = early as [pg.Client, pg.Client, pg.Client];
      await wrote.query(`INSERT INTO themes (restaurant_id, name, is_default, colors, font, updated_at) VALUES (3, 'in flight at the fence', false, '{}', 'f', now())`);
      const cutting = runCliAsync(['cutover', '--max-lag', '10m', '--timeout', '2m', '--config', cfg]); // the writer runs in this process
      for (let i = 0; i < 600 && !(await sql(src, `SELECT 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE NOT l.granted AND a.application_name = 'shardctl cutover'`)).length; i++) await sleep(50);
      await wrote.query('COMMIT');
      for (let i = 0; i < 600 && !(await sql(src, `SELECT 1 FROM pg_trigger WHERE tgname = 'shardctl_cutover_fence'`)).length; i++) await sleep(20);
      await assert.rejects(rr.query(`INSERT INTO themes (restaurant_id, name, is_default, colors, font, updated_at) VALUES (3, 'rr', false, '{}', 'f', now())`), /cut over|could not serialize/);
      await assert.rejects(ser.query(`UPDATE orders SET status = status WHERE id = (SELECT min(id) FROM orders)`), /cut over|could not serialize/);
      await Promise.all(early.map((c) => c.end()));
      const cut = await cutting;
      if (cut.status !== 0) {
        lastChild.kill('SIGKILL');
        assert.fail(`cutover: ${cut.stdout}${cut.stderr}\nfollower: ${(await last.exit).stderr.slice(-3000)}`);
      }
      assert.match(cut.stdout, /writes to the monolith were refused for [\d.]+ ?m?s/);
      const stats = await writer.stop();
      const end = await last.exit;
      assert.equal(end.status, 0, `the follower exits 0 after cutover: ${end.stderr.slice(-2000)}`);
      assert.ok(stats.commits > 50 && stats.moved > 5 && stats.deletedOrders.length > 5, JSON.stringify({ ...stats, deletedOrders: stats.deletedOrders.length }));
      assert.ok(stats.refused > 0, 'the fence refused the application writes that came during the cutover');
    } finally {
      await writer.stop().catch(() => undefined);
    }
    await assertExact(stage.config);
    const landed = await Promise.all(stage.config.shards.map((s) => sql(s.primary, `SELECT id FROM themes WHERE name = 'in flight at the fence'`)));
    assert.equal(landed.flat().length, 1, 'the transaction that wrote before the fence reached exactly one shard');
    const verify = runCli(['verify', '--config', cfg]);
    assert.equal(verify.status, 0, verify.stdout + verify.stderr);
    assert.deepEqual(await slots(stage.config.source), [], 'cutover dropped the slot');
    await assert.rejects(sql(stage.config.source, `UPDATE restaurants SET name = 'late' WHERE id = 1`), /cut over .* writes to the monolith are refused/);
    // after cutover each shard hands out ids of its own residue (the interleaving rule), never the same ones
    for (const [i, s] of stage.config.shards.entries()) {
      // the next id: last_value itself while is_called is false (setval(…, false)), else last_value + increment
      const [seq] = await sql(s.primary, `SELECT s.increment_by::text AS inc, (q.last_value + CASE WHEN q.is_called THEN s.increment_by ELSE 0 END)::text AS next
                                            FROM orders_id_seq q, pg_sequences s WHERE s.sequencename = 'orders_id_seq'`);
      assert.equal(seq.inc, String(ID_STRIDE), `${s.id}: orders ids step by ${ID_STRIDE}`);
      assert.equal(BigInt(seq.next) % BigInt(ID_STRIDE), BigInt(i + 1), `${s.id}: the next orders id is ≡ ${i + 1}`);
    }
  });
});
