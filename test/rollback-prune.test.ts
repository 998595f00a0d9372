import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { PROVE_LOCK } from '../src/online/prover.js';
import { stageFleet, type Stage } from '../harness/demo/stage.js';
import { runCliAsync } from './helpers/cli.js';
import { startWatched } from './helpers/watched.js';
import { assertExact } from './helpers/exact.js';
import { sql } from './helpers/fleet.js';

/**
 * The rollback window's record of changed rows (follow_dirty on the monolith, under each shard's
 * reverse key) is proven and pruned while `rollback --follow` runs, so rollback's fence re-proves
 * only what changed since the last proof; a monolith row tampered with after its proof is still
 * found (the monolith records writes that are not the reverse follower's); a row changed while its
 * proof runs is recorded again; a follower killed mid-round resumes exactly. Oracles: the test's own
 * SQL on the servers (the record's size, the rows), the writes the shards acknowledged.
 */
describe('rollback: the window\'s changed-row record is pruned while following back', { timeout: 900_000 }, () => {
  let stage: Stage;
  let cfg: string;
  let follower: ReturnType<typeof startWatched>;
  let child: ChildProcess;
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const monolith = () => stage.config.source;
  const shard = (i: number) => stage.config.shards[i]!.primary;
  /** rows recorded on the monolith as changed by the reverse streams (not the monolith's own writes) */
  const recorded = async () => Number((await sql(monolith(), `SELECT count(*) AS n FROM shardctl.follow_dirty WHERE slot LIKE 'shardctl\\_reverse:%'`))[0].n);
  /** waits (bounded) until at most `max` rows remain recorded */
  const pruned = async (max = 0) => {
    let n = -1;
    for (let i = 0; i < 240 && (n = await recorded()) > max; i++) await sleep(500);
    assert.ok(n <= max, `rollback --follow proves and prunes the window's changed rows while following (${n} recorded, expected at most ${max})`);
  };
  /** waits (bounded) until the monolith shows what `probe` looks for (the reverse follower applied it) */
  const onMonolith = async (probe: string, params: unknown[] = []) => {
    for (let i = 0; i < 600; i++) {
      if ((await sql(monolith(), probe, params)).length) return;
      await sleep(100);
    }
    assert.fail(`the reverse follower did not apply: ${probe} ${JSON.stringify(params)}`);
  };
  /** the first `n` restaurants of shard `i` (its own rows) */
  const restaurantsOn = async (i: number, n: number) => (await sql(shard(i), `SELECT id::text AS id FROM restaurants ORDER BY id LIMIT $1`, [n])).map((r) => r.id as string);
  /** a session on the monolith (closed by the caller) */
  const session = async () => {
    const c = new pg.Client({ connectionString: monolith() });
    await c.connect();
    return c;
  };
  /** holds the prover's lock exclusively: no proving round runs until `release` (a round in progress is waited for) */
  const freeze = async () => {
    const c = await session();
    await c.query('SELECT pg_advisory_lock($1)', [String(PROVE_LOCK)]);
    return async () => void (await c.end());
  };
  /**
   * Stalls the next proving round after it locked its records: a session holds restaurants on the
   * monolith exclusively, the round's read of the monolith's rows waits for it (the records stay
   * locked). Resolves once a prover session waits; `release` lets it go on.
   */
  const stallRound = async (thaw: () => Promise<void>) => {
    const lock = await session();
    await lock.query('BEGIN');
    await lock.query('LOCK TABLE restaurants IN ACCESS EXCLUSIVE MODE');
    await thaw();
    for (let i = 0; i < 600; i++) {
      const w = await sql(monolith(), `SELECT 1 FROM pg_stat_activity WHERE application_name LIKE 'shardctl rollback --follow prover%' AND wait_event_type = 'Lock'`);
      if (w.length) return async () => void (await lock.query('ROLLBACK'), await lock.end());
      await sleep(100);
    }
    await lock.end();
    return assert.fail('no proving round came to read the monolith while following back');
  };
  const startBack = async () => {
    follower = startWatched(['rollback', '--follow', '--config', cfg], 'reverse-start', stage.config.shards.length);
    child = await follower.started();
  };

  before(async () => {
    stage = await stageFleet({ kind: 'pos', shards: 2, scale: 0.005, fleet: { settings: { wal_level: 'logical' } } });
    cfg = stage.configPath;
    const f = startWatched(['migrate', '--follow', '--config', cfg], 'follow-start', 1);
    await f.started();
    const cut = await runCliAsync(['cutover', '--reverse', '--max-lag', '10m', '--timeout', '60s', '--config', cfg]);
    assert.equal(cut.status, 0, cut.stdout + cut.stderr);
    assert.equal((await f.exit).status, 0);
    await startBack();
  });
  after(async () => {
    child?.kill('SIGKILL');
    await stage?.stop();
  });

  it('the rows changed during the window are proven and pruned while following back', async () => {
    for (const i of [0, 1]) {
      await sql(shard(i), `UPDATE restaurants SET name = name || ' (window)' WHERE id IN (SELECT id FROM restaurants ORDER BY id LIMIT 100)`);
      await sql(shard(i), `UPDATE orders SET status = 'window' WHERE id IN (SELECT id FROM orders ORDER BY id LIMIT 300)`);
    }
    // an insert, a delete (a row on neither side is proven) and a write inside a SAVEPOINT
    const [r0] = await restaurantsOn(0, 1);
    const made = await sql(shard(0), `INSERT INTO themes (restaurant_id, name, is_default, colors, font, updated_at) SELECT $1, 'window ' || g, false, '{}', 'f', now() FROM generate_series(1, 2) g RETURNING id::text AS id`, [r0]);
    await sql(shard(0), `DELETE FROM themes WHERE id = $1`, [made[0].id]);
    const c = new pg.Client({ connectionString: shard(0) });
    await c.connect();
    try {
      await c.query('BEGIN');
      await c.query('SAVEPOINT s');
      await c.query(`UPDATE restaurants SET name = name || ' (savepoint)' WHERE id = $1`, [r0]);
      await c.query('RELEASE SAVEPOINT s');
      await c.query('COMMIT');
    } finally {
      await c.end();
    }
    const [last] = await restaurantsOn(1, 1);
    await onMonolith(`SELECT 1 FROM restaurants WHERE id = $1 AND name LIKE '% (window)'`, [last]);
    await onMonolith(`SELECT 1 FROM restaurants WHERE id = $1 AND name LIKE '% (savepoint)'`, [r0]);
    await onMonolith(`SELECT 1 FROM themes WHERE id = $1`, [made[1].id]);
    assert.deepEqual(await sql(monolith(), `SELECT 1 FROM themes WHERE id = $1`, [made[0].id]), [], 'the deleted theme is gone from the monolith');
    await pruned();
  });

  it('a row changed again while its proof runs is recorded again, then re-proven', async () => {
    const [x, ...others] = await restaurantsOn(0, 20);
    const key = JSON.stringify([x]);
    const reverse0 = `shardctl_reverse:${stage.config.shards[0]!.id}`;
    const thaw = await freeze();
    await sql(shard(0), `UPDATE restaurants SET name = 'first' WHERE id = $1`, [x]);
    await sql(shard(0), `UPDATE restaurants SET name = name || ' (again)' WHERE id = ANY($1::bigint[])`, [others]);
    await onMonolith(`SELECT 1 FROM restaurants WHERE id = $1 AND name = 'first'`, [x]);
    await onMonolith(`SELECT 1 FROM restaurants WHERE id = $1 AND name LIKE '% (again)'`, [others[others.length - 1]]);
    // the round locks x's record, compares its rows, and waits for the monolith's restaurants
    const release = await stallRound(thaw);
    await sql(shard(0), `UPDATE restaurants SET name = 'second' WHERE id = $1`, [x]); // acknowledged by the shard
    await sleep(500); // the reverse follower applies it: it waits behind the lock too
    await release();
    const refreeze = await freeze(); // the stalled round ends; no other starts
    try {
      await onMonolith(`SELECT 1 FROM restaurants WHERE id = $1 AND name = 'second'`, [x]);
      const rec = await sql(monolith(), `SELECT xid FROM shardctl.follow_dirty WHERE slot = $1 AND tbl = 'public.restaurants' AND key = $2`, [reverse0, key]);
      assert.equal(rec.length, 1, 'the row written after its proof read it is recorded again');
    } finally {
      await refreeze();
    }
    await pruned();
    const [m] = await sql(monolith(), `SELECT name FROM restaurants WHERE id = $1`, [x]);
    const [s] = await sql(shard(0), `SELECT name FROM restaurants WHERE id = $1`, [x]);
    assert.deepEqual([m.name, s.name], ['second', 'second']);
  });

  it('a monolith row tampered with after its proof makes rollback refuse (exit 3)', async () => {
    await pruned();
    const [y] = await restaurantsOn(1, 1);
    const m = await session();
    try {
      const [was] = (await m.query('SELECT name FROM restaurants WHERE id = $1', [y])).rows;
      await m.query(`SET shardctl.bypass = 'on'`); // as a DBA who knows the fence's way through
      assert.equal((await m.query(`UPDATE restaurants SET name = 'tampered' WHERE id = $1`, [y])).rowCount, 1);
      const r = await runCliAsync(['rollback', '--timeout', '60s', '--config', cfg]);
      assert.equal(r.status, 3, r.stdout + r.stderr);
      assert.match(r.stderr, new RegExp(`table public\\.restaurants key \\(${y}\\): differs on shard`));
      const fences = await Promise.all(stage.config.shards.map((s) => sql(s.primary, `SELECT 1 FROM pg_trigger WHERE tgname = 'shardctl_rollback_fence'`)));
      assert.equal(fences.flat().length, 0, 'the shard fence is lifted');
      await m.query('UPDATE restaurants SET name = $2 WHERE id = $1', [y, was.name]); // put back by hand
    } finally {
      await m.end();
    }
  });

  it('SIGKILL of rollback --follow mid-round resumes exactly; the fence then checks only the late writes', async () => {
    const ids = await restaurantsOn(1, 50);
    const thaw = await freeze();
    await sql(shard(1), `UPDATE restaurants SET name = name || ' (killed)' WHERE id = ANY($1::bigint[])`, [ids]);
    await onMonolith(`SELECT 1 FROM restaurants WHERE id = $1 AND name LIKE '% (killed)'`, [ids[ids.length - 1]]);
    const before = await recorded();
    assert.ok(before >= ids.length, `${before} recorded`);
    const release = await stallRound(thaw);
    child.kill('SIGKILL');
    assert.equal((await follower.exit).status, null);
    await release();
    for (let i = 0; i < 300; i++) {
      if (!(await sql(monolith(), `SELECT 1 FROM pg_stat_activity WHERE application_name LIKE 'shardctl rollback --follow%'`)).length) break;
      await sleep(100);
    }
    assert.equal(await recorded(), before, 'the killed round removed nothing');
    await startBack();
    await pruned();
    const late: string[] = [];
    for (const i of [0, 1]) {
      const ids = await restaurantsOn(i, 2);
      await sql(shard(i), `UPDATE restaurants SET name = name || ' (late)' WHERE id = ANY($1::bigint[])`, [ids]);
      await onMonolith(`SELECT 1 FROM restaurants WHERE id = $1 AND name LIKE '% (late)'`, [ids[ids.length - 1]]);
      late.push(...ids);
    }
    const r = await runCliAsync(['rollback', '--json', '--timeout', '60s', '--config', cfg]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const result = JSON.parse(r.stdout) as { checkedRows: number };
    // the row put back by hand stays recorded (a write that was not the follower's is never pruned)
    assert.ok(result.checkedRows >= 1 && result.checkedRows <= 1 + late.length, `the fence re-proved ${result.checkedRows} rows: the one put back by hand and at most the ${late.length} late ones`);
    assert.equal((await follower.exit).status, 0);
    await assertExact(stage.config);
  });
});
