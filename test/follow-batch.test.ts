import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse, stringify } from 'yaml';
import { stageFleet, type Stage } from '../harness/demo/stage.js';
import { loadConfig } from '../src/config/load.js';
import { followerCaughtUp, startFollower, stopFollower, type Follower } from './helpers/follower.js';
import { assertExact } from './helpers/exact.js';
import { sql } from './helpers/fleet.js';

/**
 * The follower's speed without its exactness (issue #25, follower speed): UPDATEs are batched per
 * shard (a 10,000-row UPDATE is a few statements per shard, counted by the follower's progress
 * events, not timed), and changes of the same keys inside one source transaction and across
 * transactions (insert, updates, delete, insert again; a key-changing update; rows moving between
 * shards with their `via` children) reach the shards exactly, checked with the test's own SQL
 * against the monolith. pgbench fixture plus two tables of the test's own.
 */

type Shards = { shard: string; statements: number }[];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('migrate --follow batches updates and stays exact', () => {
  let stage: Stage;
  let cfg: string;
  let follower: Follower | undefined;
  let progress: Shards | undefined;
  let reports = 0;
  const src = () => stage.config.source;
  const shards = () => stage.config.shards.map((s) => s.primary);

  /** Waits until every shard has committed the stream past the monolith's current WAL position, then for a fresh progress report. */
  const caughtUp = async () => {
    await followerCaughtUp(src(), shards(), follower!.exit);
    const seen = reports;
    while (reports < seen + 2) await sleep(100); // a report made wholly after the catch-up
    return progress!;
  };

  /** The monolith's rows of the test's tables, and the shards' together: the same, row for row. */
  const sameRows = async () => {
    for (const q of [`SELECT id, bid, qty, note FROM item ORDER BY id`, `SELECT id, item_id, n FROM item_part ORDER BY id`, `SELECT aid, bid, abalance FROM pgbench_accounts ORDER BY aid`]) {
      const want = await sql(src(), q);
      const got = (await Promise.all(shards().map((u) => sql(u, q)))).flat().sort((a, b) => Number(Object.values(a)[0]) - Number(Object.values(b)[0]));
      assert.deepEqual(got, want, q);
    }
    // every child is on the shard of its parent
    for (const u of shards()) {
      const [{ n }] = await sql(u, `SELECT count(*)::int AS n FROM item_part p WHERE NOT EXISTS (SELECT 1 FROM item i WHERE i.id = p.item_id)`);
      assert.equal(n, 0, `shard ${u}: item_part rows without their item`);
    }
    await assertExact(loadConfig(cfg));
  };

  before(async () => {
    stage = await stageFleet({ kind: 'pgbench', shards: 2, scale: 1 });
    for (const url of [src(), ...shards()]) {
      await sql(url, `CREATE TABLE item (id bigint PRIMARY KEY, bid integer NOT NULL, qty integer, note text)`);
      await sql(url, `CREATE TABLE item_part (id bigint PRIMARY KEY, item_id bigint NOT NULL, n integer)`);
    }
    await sql(src(), `ALTER TABLE pgbench_history REPLICA IDENTITY FULL`);
    await sql(src(), `INSERT INTO item SELECT g, 1 + g % 10, g, 'item ' || g FROM generate_series(1, 10000) g`);
    await sql(src(), `INSERT INTO item_part SELECT g, g, 0 FROM generate_series(1, 3000) g`);
    const doc = parse(readFileSync(stage.configPath, 'utf8'));
    doc.tables.push({ name: 'item', key: 'bid' }, { name: 'item_part', via: 'item_id -> item.id' });
    cfg = join(dirname(stage.configPath), 'shardctl-batch.yaml');
    writeFileSync(cfg, stringify(doc), { mode: 0o600 });
    follower = await startFollower(cfg, (e) => {
      if (e.type === 'follow-progress') {
        progress = e.shards as Shards;
        reports++;
      }
    });
  });
  after(async () => {
    await stopFollower(follower, cfg);
    await stage?.stop();
  });

  it('a 10,000-row UPDATE is a few batched statements on each shard, not one per row', async () => {
    const before = await caughtUp();
    await sql(src(), `UPDATE item SET qty = qty + 1, note = note || '!'`);
    const after = await caughtUp();
    const sent = after.map((s) => s.statements - before.find((b) => b.shard === s.shard)!.statements);
    // 10,000 rows over 2 shards, 500 rows a statement: about 10 a shard; one statement per row was 10,000
    assert.ok(sent.every((n) => n > 0), `each shard applied some of the update: ${sent}`);
    assert.ok(sent.reduce((a, b) => a + b, 0) <= 60, `statements sent for a 10,000-row UPDATE, per shard: ${sent}`);
    await sameRows();
  });

  it('inserts, updates and deletes of the same keys in one source transaction, a key-changing update and rows moving between shards with their children are exact', async () => {
    await sql(
      src(),
      `BEGIN;
       INSERT INTO item SELECT g, 1 + g % 10, g, 'new ' || g FROM generate_series(20001, 20600) g;
       UPDATE item SET qty = qty + 1 WHERE id BETWEEN 20001 AND 20600;
       UPDATE item SET qty = qty * 2, note = 'twice' WHERE id BETWEEN 20001 AND 20600 AND id % 7 = 0;
       UPDATE item SET qty = qty * 3, note = 'thrice' WHERE id BETWEEN 20001 AND 20600 AND id % 7 = 0;
       DELETE FROM item WHERE id BETWEEN 20001 AND 20600 AND id % 5 = 0;
       INSERT INTO item SELECT g, 1 + (g + 3) % 10, -g, 'again' FROM generate_series(20001, 20600) g WHERE g % 10 = 0;
       UPDATE item SET qty = qty - 1 WHERE id BETWEEN 20001 AND 20600 AND id % 10 = 0;
       UPDATE item SET id = id + 100000 WHERE id BETWEEN 20001 AND 20600 AND id % 11 = 0;
       UPDATE item SET qty = qty + 5 WHERE id BETWEEN 120001 AND 120600;
       -- rows moving between shards (their unit changes), with item_part children for ids <= 3000
       UPDATE item SET bid = bid % 10 + 1 WHERE id % 3 = 0 AND id <= 6000;
       UPDATE item SET qty = -qty WHERE id % 3 = 0 AND id <= 6000;
       UPDATE item SET bid = bid % 10 + 1, note = 'moved twice' WHERE id % 9 = 0 AND id <= 6000;
       UPDATE item_part SET n = n + 1 WHERE item_id % 9 = 0;
       DELETE FROM item WHERE id % 27 = 0 AND id <= 6000 AND id > 3000;
       UPDATE pgbench_accounts SET abalance = abalance + aid, bid = bid % 10 + 1 WHERE aid % 4 = 0;
       COMMIT`,
    );
    // the same keys across many small transactions (batched into one shard transaction by the follower)
    for (let i = 0; i < 40; i++) {
      await sql(src(), `UPDATE item SET bid = bid % 10 + 1, qty = qty + 1 WHERE id IN (1, 2, 3)`);
      await sql(src(), `UPDATE pgbench_accounts SET abalance = abalance - 1 WHERE aid IN (1, 2, 3)`);
      if (i % 10 === 5) await sql(src(), `DELETE FROM item WHERE id = 2; INSERT INTO item VALUES (2, ${i % 10 + 1}, ${i}, 'back')`);
    }
    await caughtUp();
    await sameRows();
  });

  it('a batched update whose row is on no shard stops the follower (exit 3) and no shard commits past it', async () => {
    await caughtUp();
    for (const u of shards()) await sql(u, `DELETE FROM item WHERE id = 4242`);
    // the insert position inside the transaction: its commit ends after it
    const [{ lsn }] = await sql(src(), `UPDATE item SET qty = 0 WHERE id = 4242 RETURNING pg_current_wal_lsn()::text AS lsn`);
    const r = await follower!.exit;
    assert.equal(r.status, 3, r.stderr.slice(-3000));
    assert.match(r.stderr, /public\.item.*\(4242\).*on no shard/);
    for (const [i, u] of shards().entries()) {
      const [{ ok }] = await sql(u, `SELECT lsn <= $1::pg_lsn AS ok FROM shardctl.follow_position WHERE slot = 'shardctl_migrate'`, [lsn]);
      assert.ok(ok, `shard ${i + 1} committed past the update it could not apply`);
    }
  });
});
