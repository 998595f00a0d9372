import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { PROVE_LOCK } from '../src/online/prover.js';
import { stageFleet, type Stage } from '../harness/demo/stage.js';
import { runCliAsync } from './helpers/cli.js';
import { sql } from './helpers/fleet.js';
import { startFollower, type Follower } from './helpers/follower.js';

/**
 * The record of changed rows (shardctl.follow_dirty on each shard) is proven and pruned while
 * following, so cutover's fence re-proves only what changed since the last proof; a shard row
 * tampered with after its proof is still found (the shards record writes that are not the
 * follower's). Checked with the test's own SQL: the record's size on every shard, the rows.
 */
describe('cutover: the changed-row record is pruned while following', { timeout: 600_000 }, () => {
  let stage: Stage;
  let cfg: string;
  let follower: Follower;
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  /** rows recorded as changed, over every shard */
  const recorded = async () => {
    let n = 0;
    for (const s of stage.config.shards) n += Number((await sql(s.primary, `SELECT count(*) AS n FROM shardctl.follow_dirty`))[0].n);
    return n;
  };
  /** the shard holding restaurant `id` with `name`, once the follower applied it */
  const applied = async (id: number, name: string) => {
    for (let i = 0; i < 300; i++) {
      for (const s of stage.config.shards) if ((await sql(s.primary, `SELECT 1 FROM restaurants WHERE id = $1 AND name = $2`, [id, name])).length) return s.primary;
      await sleep(100);
    }
    return assert.fail(`the follower did not apply restaurant ${id} = ${name}`);
  };
  /** waits (bounded) until at most `max` rows remain recorded */
  const pruned = async (max = 0) => {
    let n = -1;
    for (let i = 0; i < 240 && (n = await recorded()) > max; i++) await sleep(500);
    assert.ok(n <= max, `the follower proves and prunes the changed rows while following (${n} recorded, expected at most ${max})`);
  };
  /**
   * A prover that never lets go: two sessions take the prover's lock in turns that overlap (each
   * holds it 200 ms, then takes it again at once), as a prover working off a backlog round after
   * round. A cutover that only polls for the lock never finds it free.
   */
  const busyProver = async () => {
    const clients = [new pg.Client({ connectionString: stage.config.source }), new pg.Client({ connectionString: stage.config.source })];
    let stop = false;
    const turn = async (c: pg.Client, offset: number) => {
      await c.connect();
      await sleep(offset);
      while (!stop) {
        if ((await c.query('SELECT pg_try_advisory_lock_shared($1) AS ok', [String(PROVE_LOCK)])).rows[0].ok) {
          await sleep(200);
          await c.query('SELECT pg_advisory_unlock_shared($1)', [String(PROVE_LOCK)]);
        } else await sleep(20);
      }
      await c.end();
    };
    const done = Promise.all(clients.map((c, i) => turn(c, i * 100)));
    await sleep(300);
    return async () => {
      stop = true;
      await done;
    };
  };

  before(async () => {
    stage = await stageFleet({ kind: 'pos', shards: 2, scale: 0.01, fleet: { serverSettings: { source: { wal_level: 'logical' } } } });
    cfg = stage.configPath;
    follower = await startFollower(cfg);
  });
  after(async () => {
    follower?.child.kill('SIGKILL');
    await stage?.stop();
  });

  it('a row proven outside the fence, then tampered with on its shard, makes cutover refuse (exit 3, fence lifted), a busy prover notwithstanding', async () => {
    const src = stage.config.source;
    await sql(src, `UPDATE restaurants SET name = 'proven ' || id WHERE id <= 10`);
    await sql(src, `UPDATE orders SET status = 'proven' WHERE restaurant_id <= 3`);
    const holder = await applied(7, 'proven 7');
    await pruned();
    await sql(holder, `UPDATE restaurants SET name = 'tampered' WHERE id = 7`);
    const stopProver = await busyProver(); // cutover queues for the prover's lock: it is not starved
    const refused = await runCliAsync(['cutover', '--max-lag', '10m', '--timeout', '30s', '--config', cfg]).finally(stopProver);
    assert.equal(refused.status, 3, refused.stdout + refused.stderr);
    assert.match(refused.stderr, /table public\.restaurants key \(7\): differs on shard/);
    const fence = await sql(src, `SELECT 1 FROM pg_trigger WHERE tgname = 'shardctl_cutover_fence'`);
    assert.equal(fence.length, 0, 'the fence is lifted');
    await sql(holder, `UPDATE restaurants SET name = 'proven 7' WHERE id = 7`); // repaired by hand
  });

  it("cutover's fence checks only the rows changed since the last proof (checkedRows) and sets sequences without scanning the shards, then cuts over", async () => {
    const src = stage.config.source;
    await sql(src, `UPDATE restaurants SET name = 'again ' || id WHERE id <= 10`);
    await applied(10, 'again 10');
    await pruned(1); // the repaired row stays recorded: a write that was not the follower's is never pruned
    await sql(src, `UPDATE restaurants SET name = 'last ' || id WHERE id IN (1, 2, 3)`);
    await applied(3, 'last 3');
    // products is not changed: whatever cutover reads of it on the shards is the sequences' max() scans
    const reads = async () => {
      let n = 0;
      for (const s of stage.config.shards) n += Number((await sql(s.primary, `SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) AS n FROM pg_stat_user_tables WHERE relid = 'public.products'::regclass`))[0].n);
      return n;
    };
    const before = await reads();
    const r = await runCliAsync(['cutover', '--json', '--max-lag', '10m', '--timeout', '2m', '--config', cfg]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    await sleep(1500); // the cutover's sessions have ended: their statistics are flushed
    assert.equal(await reads(), before, "cutover sets the shards' sequences without reading their tables");
    const result = JSON.parse(r.stdout) as { checkedRows: number };
    assert.ok(result.checkedRows >= 1 && result.checkedRows <= 4, `the fence re-proved ${result.checkedRows} rows: the repaired one and at most the last 3 changed`);
    assert.equal((await follower.exit).status, 0);
    for (const id of [1, 2, 3]) await applied(id, `last ${id}`);
    const seven = await Promise.all(stage.config.shards.map((s) => sql(s.primary, `SELECT name FROM restaurants WHERE id = 7`)));
    assert.deepEqual(seven.flat().map((x) => x.name), ['again 7']);
  });
});
