import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { parse, stringify } from 'yaml';
import { stageFleet, type Stage } from '../harness/demo/stage.js';
import { runCliAsync } from './helpers/cli.js';
import { sql } from './helpers/fleet.js';
import { followerCaughtUp, startFollower, type Follower } from './helpers/follower.js';

/**
 * The prover (online/prover.ts) proves and prunes every kind of row the follower records, not only
 * rows whose monolith version was written by the recorded transaction itself: rows written inside a
 * SAVEPOINT (their xmin is the subtransaction's), `via` rows moved along by their parent (their xmin
 * is older than the move), deleted rows, and rows of a table without a primary key (recorded by all
 * their values). The measure is a count, with the test's own SQL: rows left in follow_dirty on the
 * shards once the prover has had its rounds (a bounded wait, never a timing). A row tampered with
 * on its shard after its proof still makes cutover refuse: a savepoint row and a via row.
 */
describe('the prover proves every kind of recorded row', { timeout: 600_000 }, () => {
  let stage: Stage;
  let cfg: string;
  let follower: Follower;
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const src = () => stage.config.source;
  const shards = () => stage.config.shards.map((s) => s.primary);
  /** rows recorded as changed, over every shard, with what they are */
  const recorded = async () => (await Promise.all(shards().map((u) => sql(u, `SELECT tbl, key FROM shardctl.follow_dirty`)))).flat();
  const caughtUp = () => followerCaughtUp(src(), shards(), follower.exit);
  /** `text` run on the monolith inside a SAVEPOINT of its transaction */
  const inSavepoint = async (text: string) => {
    const c = new pg.Client({ connectionString: src() });
    await c.connect();
    try {
      await c.query('BEGIN');
      await c.query('SAVEPOINT a');
      await c.query(text);
      await c.query('RELEASE SAVEPOINT a');
      await c.query('COMMIT');
    } finally {
      await c.end();
    }
  };
  /** waits (bounded: the prover's rounds, not a timing) until none of the rows `mine` picks is recorded; those left */
  const leftAfterProving = async (mine: (r: { tbl: string; key: string }) => boolean = () => true) => {
    await caughtUp();
    let left = (await recorded()).filter(mine);
    for (let i = 0; i < 60 && left.length; i++) {
      await sleep(500);
      left = (await recorded()).filter(mine);
    }
    return left;
  };
  /** the rows of `table` with these ids, as follow_dirty names them */
  const rowsOf = (table: string, ids: readonly unknown[]) => (r: { tbl: string; key: string }) => r.tbl === `public.${table}` && ids.map(String).includes(JSON.parse(r.key)[0]);
  /** the shard (url) holding the row of `table` with this id */
  const holderOf = async (table: string, id: number) => {
    for (const u of shards()) if ((await sql(u, `SELECT 1 FROM ${table} WHERE id = $1`, [id])).length) return u;
    return assert.fail(`${table} ${id} is on no shard`);
  };
  /** moves `order` on the monolith to a restaurant of the other shard (its items go along): that shard */
  const moveOrder = async (order: unknown) => {
    const here = await holderOf('orders', Number(order));
    const there = shards().find((u) => u !== here)!;
    const [{ id: to }] = await sql(there, `SELECT id FROM restaurants ORDER BY id LIMIT 1`);
    await sql(src(), `UPDATE orders SET restaurant_id = $1 WHERE id = $2`, [to, order]);
    return there;
  };

  before(async () => {
    stage = await stageFleet({ kind: 'pos', shards: 2, scale: 0.01, fleet: { serverSettings: { source: { wal_level: 'logical' } } } });
    for (const u of [src(), ...shards()]) await sql(u, `CREATE TABLE tips (restaurant_id bigint NOT NULL, amount integer NOT NULL)`);
    await sql(src(), `ALTER TABLE tips REPLICA IDENTITY FULL`);
    await sql(src(), `INSERT INTO tips SELECT r, 5 FROM generate_series(1, 6) r, generate_series(1, 3)`);
    const doc = parse(readFileSync(stage.configPath, 'utf8'));
    doc.tables.push({ name: 'tips', key: 'restaurant_id' });
    cfg = join(dirname(stage.configPath), 'shardctl-prover.yaml');
    writeFileSync(cfg, stringify(doc), { mode: 0o600 });
    follower = await startFollower(cfg);
  });
  after(async () => {
    follower?.child.kill('SIGKILL');
    await stage?.stop();
  });

  it('rows written inside a SAVEPOINT are proven and pruned', async () => {
    await inSavepoint(`UPDATE restaurants SET name = 'saved ' || id WHERE id <= 8`);
    const left = await leftAfterProving(rowsOf('restaurants', [1, 2, 3, 4, 5, 6, 7, 8]));
    assert.deepEqual(left, [], 'no recorded row is left once the prover settled');
  });

  it('via rows moved along with their parent to another shard are proven and pruned', async () => {
    // an order with items, moved to a restaurant on the other shard
    const [{ id: order }] = await sql(src(), `SELECT o.id FROM orders o WHERE EXISTS (SELECT 1 FROM order_items i WHERE i.order_id = o.id) ORDER BY o.id LIMIT 1`);
    const items = (await sql(src(), `SELECT id FROM order_items WHERE order_id = $1`, [order])).map((r) => r.id);
    const there = await moveOrder(order);
    await caughtUp();
    assert.equal(await holderOf('orders', Number(order)), there, 'the order moved');
    const orderItems = rowsOf('order_items', items);
    const left = await leftAfterProving((r) => orderItems(r) || rowsOf('orders', [order])(r));
    assert.deepEqual(left, [], 'no recorded row is left once the prover settled');
  });

  it('deleted rows are proven and pruned', async () => {
    const gone = (await sql(src(), `DELETE FROM order_items WHERE id IN (SELECT id FROM order_items ORDER BY id DESC LIMIT 5) RETURNING id`)).map((r) => r.id);
    const left = await leftAfterProving(rowsOf('order_items', gone));
    assert.deepEqual(left, [], 'no recorded row is left once the prover settled');
  });

  it('rows of a table without a primary key stay recorded for cutover (a shard write to one is not recorded, so only their count at cutover finds it)', async () => {
    await sql(src(), `INSERT INTO tips VALUES (1, 5), (2, 7), (2, 7)`);
    await sql(src(), `UPDATE tips SET amount = 9 WHERE ctid = (SELECT min(ctid) FROM tips WHERE restaurant_id = 3)`);
    await sql(src(), `DELETE FROM tips WHERE ctid = (SELECT min(ctid) FROM tips WHERE restaurant_id = 4)`);
    await sql(src(), `UPDATE restaurants SET name = name || ' (tips)' WHERE id = 5`); // a keyed row changed alongside
    assert.deepEqual(await leftAfterProving(rowsOf('restaurants', [5])), [], 'the prover ran its rounds meanwhile');
    const tips = (await recorded()).filter((r) => r.tbl === 'public.tips');
    assert.ok(tips.length >= 4, `the keyless rows stay recorded: ${JSON.stringify(tips)}`);
  });

  it('while a monolith transaction older than the changes runs, their records are kept; once it ends, they are proven', async () => {
    const older = new pg.Client({ connectionString: src() });
    await older.connect();
    try {
      await older.query('BEGIN');
      await older.query(`SELECT pg_current_xact_id()`); // it holds a transaction id from now on
      await sql(src(), `UPDATE restaurants SET name = 'after the older one ' || id WHERE id IN (3, 4)`);
      await caughtUp();
      await sleep(3000); // rounds of the prover (it may not prove them: its snapshots cannot see all it must)
      assert.equal((await recorded()).filter(rowsOf('restaurants', [3, 4])).length, 2, 'both records are kept while the older transaction runs');
    } finally {
      await older.query('ROLLBACK').catch(() => undefined);
      await older.end();
    }
    assert.deepEqual(await leftAfterProving(rowsOf('restaurants', [3, 4])), [], 'proven once it ended');
  });

  it('a savepoint row and a via row, tampered with on their shard after their proof, make cutover refuse', async () => {
    await inSavepoint(`UPDATE restaurants SET name = 'tamper me' WHERE id = 2`);
    const [{ id: order }] = await sql(src(), `SELECT o.id FROM orders o WHERE EXISTS (SELECT 1 FROM order_items i WHERE i.order_id = o.id) ORDER BY o.id DESC LIMIT 1`);
    const there = await moveOrder(order);
    assert.deepEqual(await leftAfterProving((r) => r.tbl !== 'public.tips'), [], 'both proven and pruned first (keyless rows stay recorded)');
    const [{ id: item }] = await sql(there, `SELECT id FROM order_items WHERE order_id = $1 ORDER BY id LIMIT 1`, [order]);
    for (const [table, id, set] of [['restaurants', 2, `name = 'tampered'`], ['order_items', Number(item), 'quantity = quantity + 1']] as const) {
      const holder = await holderOf(table, id);
      const [{ was }] = await sql(holder, `SELECT row_to_json(t)::text AS was FROM ${table} t WHERE id = $1`, [id]);
      await sql(holder, `UPDATE ${table} SET ${set} WHERE id = $1`, [id]);
      const r = await runCliAsync(['cutover', '--max-lag', '10m', '--timeout', '30s', '--config', cfg]);
      assert.equal(r.status, 3, r.stdout + r.stderr);
      assert.match(r.stderr, new RegExp(`table public\\.${table} key \\(${id}\\): differs on shard`));
      assert.equal((await sql(src(), `SELECT 1 FROM pg_trigger WHERE tgname = 'shardctl_cutover_fence'`)).length, 0, 'the fence is lifted');
      await sql(holder, `UPDATE ${table} t SET (${Object.keys(JSON.parse(was)).map((k) => `"${k}"`).join(', ')}) = (SELECT * FROM json_populate_record(NULL::${table}, $2::json)) WHERE id = $1`, [id, was]); // repaired by hand
    }
    const r = await runCliAsync(['cutover', '--max-lag', '10m', '--timeout', '2m', '--config', cfg]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.equal((await follower.exit).status, 0);
    // the test's own look: every changed table holds the monolith's rows, as a multiset over the shards
    for (const table of ['restaurants', 'orders', 'order_items', 'tips']) {
      const q = `SELECT row_to_json(t)::text AS r FROM ${table} t`;
      const want = (await sql(src(), q)).map((x) => x.r).sort();
      const got = (await Promise.all(shards().map((u) => sql(u, q)))).flat().map((x) => x.r).sort();
      assert.deepEqual(got, want, table);
    }
  });
});
