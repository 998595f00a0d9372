import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse, stringify } from 'yaml';
import { stageFleet, type Stage } from '../harness/demo/stage.js';
import { loadConfig } from '../src/config/load.js';
import { runCli, runCliAsync, watchCli, type CliResult } from './helpers/cli.js';
import { startFollower } from './helpers/watched.js';
import { assertExact } from './helpers/exact.js';
import { sql } from './helpers/fleet.js';
import { within } from './helpers/within.js';

/**
 * The follower at its seams (issue #23): partitioned tables, a table-rewriting ALTER, tables
 * without a primary key (REPLICA IDENTITY FULL), REPLICA IDENTITY USING INDEX, and a source
 * transaction larger than the follower may hold. Rental fixture (payment is partitioned by month)
 * plus a few tables of the test's own; every result is checked with the test's own SQL against the
 * monolith (assertExact).
 */


const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('migrate --follow at its seams (rental fixture)', () => {
  let stage: Stage;
  let cfg: string;
  const src = () => stage.config.source;
  const shards = () => stage.config.shards.map((s) => s.primary);
  /** runs on the monolith and on every shard (the shards hold the same schema) */
  const everywhere = async (q: string) => {
    for (const url of [src(), ...shards()]) await sql(url, q);
  };
  /** a config of the fixture's tables plus `extra` */
  const withTables = (file: string, extra: object[]) => {
    const doc = parse(readFileSync(stage.configPath, 'utf8'));
    doc.tables.push(...extra);
    const path = join(dirname(stage.configPath), file);
    writeFileSync(path, stringify(doc), { mode: 0o600 });
    return path;
  };
  /** Waits until every shard has committed the stream past the monolith's current WAL position. */
  const caughtUp = async (exit: Promise<CliResult>) => {
    const [{ lsn }] = await sql(src(), `SELECT pg_current_wal_lsn()::text AS lsn`);
    let ended: CliResult | undefined;
    void exit.then((r) => (ended = r));
    for (let i = 0; i < 1200; i++) {
      if (ended) assert.fail(`the follower ended (${ended.status}): ${ended.stderr.slice(-3000)}`);
      const at = await Promise.all(shards().map((u) => sql(u, `SELECT lsn >= $1::pg_lsn AS ok FROM shardctl.follow_position WHERE slot = 'shardctl_migrate'`, [lsn])));
      if (at.every((r) => r[0]?.ok)) return;
      await sleep(250);
    }
    assert.fail('the follower did not catch up in 300 s');
  };
  const abandon = () => runCli(['migrate', '--abandon', '--config', cfg]);

  before(async () => {
    stage = await stageFleet({ kind: 'rental', shards: 2, scale: 0.2 });
    // the fixture's foreign keys that cross stores, accepted (as schemas.test.ts does)
    const text = readFileSync(stage.configPath, 'utf8')
      .replace('  - name: rental\n', '  - name: rental\n    crossingKeys: [ rental_customer_id_fkey, rental_staff_id_fkey ]\n')
      .replace('  - name: payment\n', '  - name: payment\n    crossingKeys: [ payment_p2022_01_customer_id_fkey, payment_p2022_01_staff_id_fkey, payment_p2022_02_customer_id_fkey ]\n');
    writeFileSync(stage.configPath, text);
    for (const s of shards()) {
      await sql(s, `ALTER TABLE rental DROP CONSTRAINT rental_customer_id_fkey, DROP CONSTRAINT rental_staff_id_fkey;
        ALTER TABLE payment_p2022_01 DROP CONSTRAINT payment_p2022_01_customer_id_fkey, DROP CONSTRAINT payment_p2022_01_staff_id_fkey;
        ALTER TABLE payment_p2022_02 DROP CONSTRAINT payment_p2022_02_customer_id_fkey`);
    }
    // a table of the test's own, with a primary key, for the large transaction
    await everywhere(`CREATE TABLE bulk_log (id bigint PRIMARY KEY, store_id integer NOT NULL, note text)`);
    cfg = withTables('shardctl-seams.yaml', [{ name: 'bulk_log' }]);
  });
  after(() => stage?.stop());

  it('REPLICA IDENTITY USING INDEX on columns without the primary key is refused before anything is created (exit 3), naming the fix', async () => {
    await everywhere(`CREATE TABLE coupon (id integer PRIMARY KEY, store_id integer NOT NULL, code text NOT NULL, value integer)`);
    await everywhere(`CREATE UNIQUE INDEX coupon_code ON coupon (code)`);
    await sql(src(), `ALTER TABLE coupon REPLICA IDENTITY USING INDEX coupon_code`);
    await sql(src(), `INSERT INTO coupon SELECT g, 1 + g % 4, 'c' || g, g FROM generate_series(1, 20) g`);
    const withCoupon = withTables('shardctl-coupon.yaml', [{ name: 'bulk_log' }, { name: 'coupon' }]);
    let deleted = false;
    const r = await watchCli(['migrate', '--follow', '--json', '--config', withCoupon], (e, child) => {
      // today's code gets this far: a DELETE then stops the follower with an internal error
      if (e.type === 'follow-start' && !deleted) {
        deleted = true;
        void sql(src(), `DELETE FROM coupon WHERE id = 3`).then(() => sleep(20_000)).then(() => child.kill('SIGKILL'));
      }
    });
    const slots = await sql(src(), `SELECT slot_name FROM pg_replication_slots`);
    runCli(['migrate', '--abandon', '--config', withCoupon]);
    assert.equal(r.status, 3, r.stdout + r.stderr);
    assert.match(r.stderr, /table public\.coupon has REPLICA IDENTITY USING INDEX coupon_code.*fix: ALTER TABLE "public"\."coupon" REPLICA IDENTITY DEFAULT/);
    assert.doesNotMatch(r.stderr, /internal error|This is a bug|    at /);
    assert.deepEqual(slots, [], 'nothing was created');
  });

  it('partitions: changes through the parent and naming a partition (a row moving between partitions too) reach the shards exactly', async () => {
    abandon(); // whatever an earlier test left
    const f = startFollower(cfg);
    const child = await f.streaming();
    try {
      const [{ max }] = await sql(src(), `SELECT max(payment_id) AS max FROM payment`);
      await sql(src(), `INSERT INTO payment (payment_id, customer_id, staff_id, rental_id, amount, payment_date)
                        SELECT $1::int + rental_id, customer_id, staff_id, rental_id, 1.25, '2022-03-15 10:00:00+00' FROM rental WHERE rental_id % 7 = 0`, [max]);
      await sql(src(), `UPDATE payment_p2022_03 SET amount = amount + 1 WHERE payment_id % 3 = 0`);
      await sql(src(), `UPDATE payment SET payment_date = payment_date + interval '1 month' WHERE payment_id % 11 = 0 AND payment_date < '2022-02-01'`);
      await sql(src(), `DELETE FROM payment_p2022_02 WHERE payment_id % 13 = 0`);
      await sql(src(), `DELETE FROM payment WHERE payment_id % 17 = 0`);
      await caughtUp(f.exit);
      await assertExact(loadConfig(cfg));
      // the rows are in the shards' partitions of their month, as on the monolith
      const placed = async (url: string) => (await sql(url, `SELECT tableoid::regclass::text AS p, count(*)::int AS n FROM payment GROUP BY 1 ORDER BY 1`)).map((x) => `${x.p}:${x.n}`);
      const onShards = new Map<string, number>();
      for (const u of shards()) for (const x of await placed(u)) onShards.set(x.split(':')[0]!, (onShards.get(x.split(':')[0]!) ?? 0) + Number(x.split(':')[1]));
      assert.deepEqual([...onShards].map(([p, n]) => `${p}:${n}`).sort(), await placed(src()));
    } finally {
      child.kill('SIGINT');
    }
    assert.equal((await f.exit).status, 130);
    // a window whose publication an older shardctl made (partitions published under their own names) is refused with the way out
    await sql(src(), `ALTER PUBLICATION shardctl_migrate SET (publish_via_partition_root = false)`);
    const old = runCli(['migrate', '--follow', '--config', cfg]);
    await sql(src(), `ALTER PUBLICATION shardctl_migrate SET (publish_via_partition_root = true)`);
    assert.equal(old.status, 3, old.stdout + old.stderr);
    assert.match(old.stderr, /publication shardctl_migrate .* older shardctl without publish_via_partition_root.*public\.payment.*shardctl migrate --abandon, then shardctl migrate --follow/s);
  });

  it('a 100,000-row source transaction is applied in bounded chunks (the follower never holds more than a bounded number of changes), and one that takes longer than wal_sender_timeout to apply keeps its stream', async () => {
    let high = 0;
    const f = startFollower(cfg, (e) => {
      if (e.type === 'follow-progress') high = Math.max(high, Number(e.heldChanges ?? Infinity));
    });
    const child = await f.streaming();
    try {
      await sql(src(), `INSERT INTO bulk_log SELECT g, 1 + g % 4, 'row ' || g FROM generate_series(1, 100000) g`);
      await caughtUp(f.exit);
      await sleep(2500); // a heartbeat or two after the catch-up
      await assertExact(loadConfig(cfg));
      assert.ok(high <= 12_000, `the follower held up to ${high} changes of one source transaction`);
      // applying one source transaction may take longer than the source's wal_sender_timeout: the
      // follower keeps its replication connection alive meanwhile (else the walsender ends it, and
      // every restart replays the same transaction from its start)
      await sql(src(), `ALTER SYSTEM SET wal_sender_timeout = '5s'`);
      await sql(src(), `SELECT pg_reload_conf()`);
      try {
        await sql(src(), `UPDATE bulk_log SET note = note || '!' WHERE id <= 15000`);
        await caughtUp(f.exit);
      } finally {
        await sql(src(), `ALTER SYSTEM RESET wal_sender_timeout`);
        await sql(src(), `SELECT pg_reload_conf()`);
      }
      await assertExact(loadConfig(cfg));
    } finally {
      child.kill('SIGINT');
    }
    assert.equal((await f.exit).status, 130);
  });

  it('a table-rewriting ALTER while following stops the follower (exit 3, table named) and cutover refuses (exit 3)', async () => {
    const f = startFollower(cfg);
    const child = await f.streaming();
    setTimeout(() => child.kill('SIGKILL'), 120_000).unref();
    // same type, every value changed, nothing in the stream
    await sql(src(), `ALTER TABLE film ALTER COLUMN rental_duration TYPE smallint USING rental_duration + 7`);
    const stopped = await within(f.exit, 60_000);
    const cut = await runCliAsync(['cutover', '--max-lag', '10m', '--timeout', '20', '--config', cfg]);
    assert.equal(cut.status, 3, cut.stdout + cut.stderr);
    assert.match(cut.stderr, /public\.film/);
    assert.ok(stopped, 'the follower stopped by itself');
    assert.equal(stopped.status, 3, stopped.stderr);
    assert.match(stopped.stderr, /table public\.film was rewritten on the source while following.*shardctl migrate --abandon/s);
    assert.doesNotMatch(stopped.stderr, /internal error|This is a bug/);
    // the monolith stays writable
    await sql(src(), `UPDATE film SET rental_duration = rental_duration - 7`);
    assert.equal(abandon().status, 0);
  });

  it('a table without a primary key and REPLICA IDENTITY FULL: inserts, updates and deletes of duplicate rows and NULLs are exact, and cutover proves it', async () => {
    await everywhere(`CREATE TABLE rental_history (store_id integer NOT NULL, rental_id integer, event text, detail jsonb, at timestamptz)`);
    await sql(src(), `ALTER TABLE rental_history REPLICA IDENTITY FULL`);
    await sql(src(), `INSERT INTO rental_history SELECT 1 + g % 4, g, CASE WHEN g % 5 = 0 THEN NULL ELSE 'out' END, '{"a": 1}', '2022-01-01' FROM generate_series(1, 200) g`);
    await sql(src(), `INSERT INTO rental_history SELECT store_id, rental_id, event, detail, at FROM rental_history WHERE rental_id <= 40`); // duplicates
    const withHistory = withTables('shardctl-history.yaml', [{ name: 'bulk_log' }, { name: 'rental_history' }]);
    // neither a key nor FULL identity stays refused, with the fix named
    await everywhere(`CREATE TABLE rental_note (store_id integer NOT NULL, note text)`);
    const withNote = withTables('shardctl-note.yaml', [{ name: 'bulk_log' }, { name: 'rental_note' }]);
    const refused = runCli(['migrate', '--follow', '--config', withNote]);
    assert.equal(refused.status, 3, refused.stdout + refused.stderr);
    assert.match(refused.stderr, /table public\.rental_note has no primary key.*fix: ALTER TABLE "public"\."rental_note" REPLICA IDENTITY FULL/);
    cfg = withHistory;
    runCli(['migrate', '--abandon', '--config', withHistory]); // whatever an earlier test left
    const f = startFollower(withHistory);
    await f.streaming();
    await sql(src(), `INSERT INTO rental_history VALUES (2, 9001, 'in', NULL, NULL), (2, 9001, 'in', NULL, NULL), (3, NULL, NULL, NULL, '2022-02-02')`);
    // one of two identical rows changes, one of two identical rows goes (exactly one each)
    await sql(src(), `UPDATE rental_history SET event = 'back' WHERE ctid = (SELECT ctid FROM rental_history WHERE rental_id = 10 LIMIT 1)`);
    await sql(src(), `DELETE FROM rental_history WHERE ctid = (SELECT ctid FROM rental_history WHERE rental_id = 20 LIMIT 1)`);
    // NULL-safe: rows with NULL columns updated and deleted
    await sql(src(), `UPDATE rental_history SET detail = '{"b": 2}' WHERE rental_id = 9001`);
    await sql(src(), `DELETE FROM rental_history WHERE rental_id IS NULL`);
    await sql(src(), `UPDATE rental_history SET event = 'late' WHERE event IS NULL AND rental_id % 2 = 0`);
    // a row that changes unit (store): it moves to its new shard
    await sql(src(), `UPDATE rental_history SET store_id = store_id % 4 + 1 WHERE rental_id IN (5, 6, 7, 8)`);
    await sql(src(), `DELETE FROM rental_history WHERE rental_id = 30`);
    await caughtUp(f.exit);
    await assertExact(loadConfig(withHistory));
    // cutover's proof of a keyless table can fail: a changed row tampered on its shard is found
    const holder = (await Promise.all(shards().map(async (u) => ((await sql(u, `SELECT 1 FROM rental_history WHERE rental_id = 9001`)).length ? u : undefined)))).find(Boolean)!;
    await sql(holder, `UPDATE rental_history SET event = 'tampered' WHERE ctid = (SELECT ctid FROM rental_history WHERE rental_id = 9001 LIMIT 1)`);
    const tampered = await runCliAsync(['cutover', '--max-lag', '10m', '--timeout', '120', '--config', withHistory]);
    assert.equal(tampered.status, 3, tampered.stdout + tampered.stderr);
    assert.match(tampered.stderr, /differ in \d+ of the \d+ rows changed while following.*table public\.rental_history row .*9001/s);
    await sql(holder, `UPDATE rental_history SET event = 'in' WHERE rental_id = 9001`);
    // a row the follower never wrote, changed on its shard by another session (a DBA, an application
    // routed too early): the shard records it as a foreign write, so cutover finds it as well
    const other = (await Promise.all(shards().map(async (u) => ((await sql(u, `SELECT 1 FROM rental_history WHERE rental_id = 101`)).length ? u : undefined)))).find(Boolean)!;
    await sql(other, `UPDATE rental_history SET event = 'stray' WHERE rental_id = 101`);
    const stray = await runCliAsync(['cutover', '--max-lag', '10m', '--timeout', '120', '--config', withHistory]);
    assert.equal(stray.status, 3, stray.stdout + stray.stderr);
    assert.match(stray.stderr, /table public\.rental_history row .*"stray","101".*the monolith has 0, shard s\d 1/s);
    await sql(other, `UPDATE rental_history SET event = 'out' WHERE rental_id = 101`);
    const cut = await runCliAsync(['cutover', '--max-lag', '10m', '--timeout', '120', '--config', withHistory]);
    assert.equal(cut.status, 0, cut.stdout + cut.stderr);
    assert.equal((await f.exit).status, 0);
    await assertExact(loadConfig(withHistory));
  });
});
