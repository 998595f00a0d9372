import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { parse, stringify } from 'yaml';
import { stageFleet, type Stage } from '../harness/demo/stage.js';
import { loadConfig } from '../src/config/load.js';
import { followerCaughtUp, startFollower, stopFollower, type Follower } from './helpers/follower.js';
import { assertExact } from './helpers/exact.js';
import { sql } from './helpers/fleet.js';

/**
 * The follower applies the shards in parallel and pipelined (issue #25, follower speed) and stays
 * exact. Parallelism is shown without timing: a shard whose batch waits on a lock the test holds
 * does not hold back the other shard, which receives its batch meanwhile (seen in the other shard's
 * pg_stat_activity). Exactness: a row inserted on one shard and moved to another by a batched
 * UPDATE in the same source transaction; pgbench's TPC-B-like transactions from 4 clients at once,
 * mixed with inserts, updates and deletes of the same keys, key changes, rows moving between shards
 * and keyless rows (pgbench_history, REPLICA IDENTITY FULL, with duplicates) updated and deleted
 * one at a time: the shards hold the monolith's rows exactly, checked with the test's own SQL.
 */

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Rows per bid of the test's own table: more than one batch of the follower (2,000 rows). */
const PER_BID = 2_500;

describe('migrate --follow applies shards in parallel, pipelined, and stays exact', () => {
  let stage: Stage;
  let cfg: string;
  let follower: Follower | undefined;
  const src = () => stage.config.source;
  const shards = () => stage.config.shards.map((s) => s.primary);

  const caughtUp = () => followerCaughtUp(src(), shards(), follower!.exit);

  /** Each table's rows on the monolith and on the shards together: the same multiset (duplicates of keyless rows counted). */
  const sameRows = async () => {
    for (const q of [
      `SELECT id, bid, n, note FROM acct`,
      `SELECT aid, bid, abalance FROM pgbench_accounts`,
      `SELECT tid, bid, tbalance FROM pgbench_tellers`,
      `SELECT bid, bbalance FROM pgbench_branches`,
      `SELECT tid, bid, aid, delta, mtime::text, filler FROM pgbench_history`,
    ]) {
      const text = (rows: object[]) => rows.map((r) => JSON.stringify(Object.values(r))).sort();
      const want = text(await sql(src(), q));
      const got = text((await Promise.all(shards().map((u) => sql(u, q)))).flat());
      assert.equal(got.length, want.length, `${q}: ${got.length} rows on the shards, ${want.length} on the monolith`);
      assert.deepEqual(got, want, q);
    }
    await assertExact(loadConfig(cfg));
  };

  /** The bids whose rows the shard holds (the test's own look at the shard). */
  const bidsOn = async (shard: number) => (await sql(shards()[shard]!, `SELECT DISTINCT bid FROM acct ORDER BY bid`)).map((r) => Number(r.bid));

  before(async () => {
    stage = await stageFleet({ kind: 'pgbench', shards: 2, scale: 1 });
    for (const url of [src(), ...shards()]) await sql(url, `CREATE TABLE acct (id bigint PRIMARY KEY, bid integer NOT NULL, n integer, note text)`);
    await sql(src(), `ALTER TABLE pgbench_history REPLICA IDENTITY FULL`);
    await sql(src(), `INSERT INTO acct SELECT g, 1 + g % 10, 0, 'row ' || g FROM generate_series(1, ${PER_BID * 10}) g`);
    const doc = parse(readFileSync(stage.configPath, 'utf8'));
    doc.tables.push({ name: 'acct', key: 'bid' });
    cfg = join(dirname(stage.configPath), 'shardctl-pipeline.yaml');
    writeFileSync(cfg, stringify(doc), { mode: 0o600 });
    follower = await startFollower(cfg);
  });
  after(async () => {
    await stopFollower(follower, cfg);
    await stage?.stop();
  });

  it('a shard whose batch waits on a lock does not hold back the other shard: it gets its batch meanwhile', async () => {
    await caughtUp();
    const [one, two] = [await bidsOn(0), await bidsOn(1)];
    assert.ok(one.length && two.length, `both shards hold bids: ${one} / ${two}`);
    // the test locks every row of one of shard 1's bids there: the follower's first batch on shard 1 waits
    const locker = new pg.Client({ connectionString: shards()[0] });
    await locker.connect();
    try {
      await locker.query('BEGIN');
      await locker.query(`SELECT 1 FROM acct WHERE bid = $1 FOR UPDATE`, [one[0]]);
      // one source transaction: a full batch for shard 1 first, then more than a batch for shard 2
      await sql(src(), `BEGIN; UPDATE acct SET n = n + 1 WHERE bid = ${one[0]}; UPDATE acct SET n = n + 2 WHERE bid IN (${two.join(', ')}); COMMIT`);
      const follow = `application_name = 'shardctl follow' AND datname = current_database()`;
      const waitFor = async (url: string, q: string, what: string) => {
        for (let i = 0; i < 240; i++) {
          if ((await sql(url, q)).length) return;
          await sleep(250);
        }
        assert.fail(what);
      };
      await waitFor(shards()[0]!, `SELECT 1 FROM pg_stat_activity WHERE ${follow} AND wait_event_type = 'Lock'`, "the follower's batch on shard 1 never waited on the test's lock");
      // shard 1 still waits (the lock is held): shard 2 has had an UPDATE of the batch in its open transaction
      await waitFor(
        shards()[1]!,
        `SELECT 1 FROM pg_stat_activity WHERE ${follow} AND xact_start IS NOT NULL AND query LIKE 'UPDATE %unnest%' AND query LIKE '%acct%'`,
        "while shard 1 waited, shard 2 received no batch: the shards are applied one after the other",
      );
      const [{ n }] = await sql(shards()[0]!, `SELECT count(*)::int AS n FROM pg_stat_activity WHERE ${follow} AND wait_event_type = 'Lock'`);
      assert.equal(n, 1, 'shard 1 still waits on the lock');
    } finally {
      await locker.query('COMMIT').catch(() => undefined);
      await locker.end();
    }
    await caughtUp();
    await sameRows();
  });

  it('a row inserted on one shard and moved to the other by a batched UPDATE in the same source transaction is exact', async () => {
    await caughtUp();
    const [one, two] = [await bidsOn(0), await bidsOn(1)];
    // inserted on shard 1 (queued there), then moved to shard 2 ahead of more than a batch of shard 2's updates
    await sql(
      src(),
      `BEGIN;
       INSERT INTO acct SELECT g, ${one[0]}, g, 'born on 1' FROM generate_series(900001, 900010) g;
       UPDATE acct SET bid = ${two[0]}, note = 'moved to 2' WHERE id BETWEEN 900001 AND 900010;
       UPDATE acct SET n = n + 3 WHERE bid IN (${two.join(', ')});
       COMMIT`,
    );
    await caughtUp();
    await sameRows();
  });

  it("pgbench's TPC-B-like load from 4 clients, mixed with inserts, updates and deletes of the same keys, key changes, moves and keyless rows, is exact", async () => {
    await caughtUp();
    const [{ accounts, tellers, branches }] = await sql(
      src(),
      `SELECT (SELECT max(aid) FROM pgbench_accounts)::int AS accounts, (SELECT max(tid) FROM pgbench_tellers)::int AS tellers, (SELECT max(bid) FROM pgbench_branches)::int AS branches`,
    );
    const client = async (c: number) => {
      const db = new pg.Client({ connectionString: src() });
      await db.connect();
      try {
        for (let i = 0; i < 150; i++) {
          try {
            await transaction(db, c, i);
          } catch (e) {
            await db.query('ROLLBACK');
            if ((e as { code?: string }).code !== '40P01') throw e;
            i--; // two clients' transactions deadlocked: this one is tried again
          }
        }
      } finally {
        await db.end();
      }
    };
    const transaction = async (db: pg.Client, c: number, i: number) => {
      const aid = 1 + ((i * 7919 + c * 104729) % accounts);
      const tid = 1 + ((i * 31 + c) % tellers);
      const bid = 1 + ((i + c) % branches);
      const delta = ((i * 37 + c) % 10001) - 5000;
      // pgbench's tpcb-like script
      await db.query('BEGIN');
      await db.query('UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2', [delta, aid]);
      await db.query('SELECT abalance FROM pgbench_accounts WHERE aid = $1', [aid]);
      await db.query('UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2', [delta, tid]);
      await db.query('UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2', [delta, bid]);
      await db.query(`INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, '2024-01-01')`, [tid, bid, aid, delta % 3]);
      const id = 1_000_000 + c * 10_000 + i;
      if (i % 5 === 0) {
        // the same key inserted, updated twice, deleted and inserted again in one transaction
        await db.query(`INSERT INTO acct VALUES ($1, $2, 0, 'new')`, [id, bid]);
        await db.query(`UPDATE acct SET n = n + 1 WHERE id = $1`, [id]);
        await db.query(`UPDATE acct SET n = n * 10, note = 'twice' WHERE id = $1`, [id]);
        if (i % 10 === 0) await db.query(`DELETE FROM acct WHERE id = $1`, [id]);
        if (i % 20 === 0) await db.query(`INSERT INTO acct VALUES ($1, $2, -1, 'again')`, [id, 1 + (bid % branches)]);
      }
      if (i % 7 === 0) await db.query(`UPDATE acct SET bid = bid % 10 + 1, n = n + 1 WHERE id = $1`, [1 + ((i * 13 + c * 977) % (PER_BID * 10))]); // a move
      if (i % 11 === 0) await db.query(`UPDATE acct SET id = id + 5000000 WHERE id = $1`, [1 + ((i * 17 + c * 1933) % (PER_BID * 10))]); // a key change
      if (i % 13 === 0) {
        // keyless rows: exactly one of identical rows changes, exactly one goes
        await db.query(`UPDATE pgbench_history SET delta = delta + 1 WHERE ctid = (SELECT ctid FROM pgbench_history WHERE tid = $1 LIMIT 1)`, [tid]);
        await db.query(`DELETE FROM pgbench_history WHERE ctid = (SELECT ctid FROM pgbench_history WHERE bid = $1 ORDER BY tid LIMIT 1)`, [bid]);
      }
      // many keys, some of them changed again by other transactions
      if (i % 3 === 0) await db.query(`UPDATE acct SET n = n - 1 WHERE bid = $1 AND id % 97 = $2`, [bid, c]);
      await db.query('COMMIT');
    };
    await Promise.all([0, 1, 2, 3].map(client));
    // duplicates of keyless rows: the same values logged twice, one of them then changed
    await sql(src(), `INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) SELECT 1, b, 1, 7, '2024-01-02' FROM generate_series(1, ${branches}) b, generate_series(1, 3)`);
    await sql(src(), `UPDATE pgbench_history SET delta = 8 WHERE ctid IN (SELECT DISTINCT ON (bid) ctid FROM pgbench_history WHERE mtime = '2024-01-02' ORDER BY bid)`);
    await caughtUp();
    await sameRows();
  });
});
