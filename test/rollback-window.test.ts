import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { stageFleet, type Stage } from '../harness/demo/stage.js';
import { runCliAsync, watchCli } from './helpers/cli.js';
import { startWatched } from './helpers/watched.js';
import { assertExact } from './helpers/exact.js';
import { sql } from './helpers/fleet.js';
import { scannedSequenceColumns, scanWarning } from '../src/sequences/align.js';
import type { TableModel } from '../src/tables/model.js';

/**
 * Rollback checks, inside its shard fence, only the rows changed during the window (the reverse
 * follower's record on the monolith, and the monolith's record of writes that were not the
 * follower's), bounded by --timeout end to end. Tampering outside the applied stream is still found
 * (exit 3, the shard fence lifted, the shards stay the truth). Oracles: the test's own SQL on the
 * servers and the writes the servers acknowledged.
 */
describe('rollback: only the window\'s changed rows are checked inside the fence, within --timeout', { timeout: 600_000 }, () => {
  let stage: Stage;
  let cfg: string;
  let follower: ReturnType<typeof startWatched>;
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  /** every (table, key) the test changed during the window: the oracle of the rows rollback must check */
  const changed = new Set<string>();
  const shardFences = async () =>
    (await Promise.all(stage.config.shards.map((s) => sql(s.primary, `SELECT tgrelid::regclass::text AS t FROM pg_trigger WHERE tgname = 'shardctl_rollback_fence'`)))).flat();
  const reverseState = async () => (await sql(stage.config.catalog, `SELECT state FROM shardctl.online WHERE slot = 'shardctl_reverse'`))[0]?.state;
  /** waits (bounded) until the monolith shows what `probe` looks for (the reverse follower applied it) */
  const onMonolith = async (probe: string, params: unknown[]) => {
    for (let i = 0; i < 600; i++) {
      if ((await sql(stage.config.source, probe, params)).length) return;
      await sleep(100);
    }
    assert.fail(`the reverse follower did not apply: ${probe} ${JSON.stringify(params)}`);
  };
  /** restaurants of each shard (the shard's own rows) */
  const restaurantsOn = async (i: number) => (await sql(stage.config.shards[i]!.primary, `SELECT id::text AS id FROM restaurants ORDER BY id LIMIT 4`)).map((r) => r.id as string);
  const refused = async (args: string[], pattern: RegExp) => {
    const r = await runCliAsync(['rollback', ...args, '--config', cfg]);
    assert.equal(r.status, 3, r.stdout + r.stderr);
    assert.match(r.stderr, pattern);
    assert.deepEqual(await shardFences(), [], 'the shard fence is lifted');
    assert.equal(await reverseState(), 'following', 'the window stays open');
    return r;
  };

  before(async () => {
    stage = await stageFleet({ kind: 'pos', shards: 2, scale: 0.005, fleet: { settings: { wal_level: 'logical' } } });
    cfg = stage.configPath;
    // a sequence column no index leads with: its max() scans the table inside the fences, said up front
    for (const url of [stage.config.source, ...stage.config.shards.map((x) => x.primary)]) await sql(url, 'ALTER TABLE analytics_events ADD COLUMN seq bigserial');
    const f = startWatched(['migrate', '--follow', '--config', cfg], 'follow-start', 1);
    await f.started();
    const cut = await runCliAsync(['cutover', '--reverse', '--max-lag', '10m', '--timeout', '60s', '--config', cfg]);
    assert.equal(cut.status, 0, cut.stdout + cut.stderr);
    assert.match(cut.stderr, /^warning: max\(col\) scans the table inside the fence for public\.analytics_events\.seq: add an index leading with the column/m);
    assert.ok(cut.stderr.indexOf('warning: max(col)') < cut.stderr.indexOf('fenced after'), 'before the fence');
    assert.equal((await f.exit).status, 0);
    follower = startWatched(['rollback', '--follow', '--config', cfg], 'reverse-start', stage.config.shards.length);
    await follower.started();
  });
  after(() => stage?.stop());

  it('a monolith row written through the bypass during the window: rollback refuses (exit 3), the shards stay the truth', async () => {
    const [id] = await restaurantsOn(1);
    const m = new pg.Client({ connectionString: stage.config.source });
    await m.connect();
    try {
      const [was] = (await m.query('SELECT name FROM restaurants WHERE id = $1', [id])).rows;
      await m.query(`SET shardctl.bypass = 'on'`); // as a DBA who knows the fence's way through
      assert.equal((await m.query(`UPDATE restaurants SET name = 'tampered' WHERE id = $1`, [id])).rowCount, 1);
      changed.add(`restaurants ${id}`);
      await refused(['--timeout', '60s'], /differ in 1 of the \d+ rows changed during the rollback window.*the shard fence is lifted/);
      // the shard fence is gone: the shards take writes again
      await sql(stage.config.shards[1]!.primary, `UPDATE restaurants SET name = name WHERE id = $1`, [id]);
      await m.query('UPDATE restaurants SET name = $2 WHERE id = $1', [id, was.name]); // put back: proven equal next time
    } finally {
      await m.end();
    }
  });

  it('a reference row changed on one shard only (a stream the monolith does not apply): rollback refuses', async () => {
    const last = stage.config.shards[stage.config.shards.length - 1]!.primary;
    const [{ code }] = await sql(last, `SELECT code FROM currencies ORDER BY code LIMIT 1`);
    await sql(last, `UPDATE currencies SET usd_rate = usd_rate + 5 WHERE code = $1`, [code]);
    changed.add(`currencies ${code}`);
    await refused(['--timeout', '60s'], /differ in 1 of the \d+ rows changed during the rollback window/);
    await sql(last, `UPDATE currencies SET usd_rate = usd_rate - 5 WHERE code = $1`, [code]);
  });

  it('a check the monolith holds up (a lock) ends at --timeout: exit 3, the shard fence lifted', async () => {
    const [id] = await restaurantsOn(0);
    await sql(stage.config.shards[0]!.primary, `UPDATE restaurants SET name = 'locked out' WHERE id = $1`, [id]);
    changed.add(`restaurants ${id}`);
    await onMonolith(`SELECT 1 FROM restaurants WHERE id = $1 AND name = 'locked out'`, [id]);
    const lock = new pg.Client({ connectionString: stage.config.source });
    await lock.connect();
    try {
      const started = Date.now();
      const run = watchCli(['rollback', '--json', '--timeout', '6s', '--config', cfg], (e) => {
        // the monolith caught up already: take the lock once the shards are fenced, before the check reads it
        if (e.type === 'rollback-step' && e.step === 'fenced') void lock.query('BEGIN; LOCK TABLE restaurants IN ACCESS EXCLUSIVE MODE');
      });
      const r = await Promise.race([run, sleep(120_000).then(() => assert.fail('rollback held its fence far past --timeout'))]);
      assert.equal(r.status, 3, r.stdout + r.stderr);
      assert.match(r.stderr, /did not finish checking the rows changed during the window within --timeout \(6s of shard fence\); the shard fence is lifted/);
      assert.ok(Date.now() - started < 90_000, 'bounded (a generous bound: the machine is shared)');
      assert.deepEqual(await shardFences(), [], 'the shard fence is lifted');
      assert.equal(await reverseState(), 'following');
    } finally {
      await lock.query('ROLLBACK').catch(() => undefined);
      await lock.end();
    }
  });

  it('rollback checks only rows changed during the window, far fewer than the data', async () => {
    const mine = await restaurantsOn(0);
    const theirs = await restaurantsOn(1);
    for (const id of [mine[1]!, theirs[1]!, theirs[2]!]) {
      const shard = mine.includes(id) ? 0 : 1;
      const r = await sql(stage.config.shards[shard]!.primary, `UPDATE restaurants SET name = name || ' (window)' WHERE id = $1 RETURNING id`, [id]);
      assert.equal(r.length, 1);
      changed.add(`restaurants ${id}`);
    }
    for (const [shard, id] of [[0, mine[0]!], [1, theirs[0]!]] as const) {
      const [t] = await sql(stage.config.shards[shard]!.primary, `INSERT INTO themes (restaurant_id, name, is_default, colors, font, updated_at) VALUES ($1, 'window', false, '{}', 'f', now()) RETURNING id::text AS id`, [id]);
      changed.add(`themes ${t.id}`);
    }
    const [big] = await sql(stage.config.source, `SELECT (SELECT count(*) FROM restaurants) + (SELECT count(*) FROM themes) + (SELECT count(*) FROM orders) + (SELECT count(*) FROM order_items) AS n`);
    const events: { type: string; step?: string; detail?: string }[] = [];
    const r = await watchCli(['rollback', '--json', '--timeout', '60s', '--config', cfg], (e) => void events.push(e as (typeof events)[number]));
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const result = JSON.parse(r.stdout);
    // the reverse prover may have proven some while following (rollback-prune.test.ts); the row a DBA wrote through the bypass stays recorded
    assert.ok(result.checkedRows >= 1 && result.checkedRows <= changed.size, `rows checked inside the fence (${result.checkedRows}) are among the rows changed during the window (${[...changed].join('; ')})`);
    assert.ok(result.checkedRows * 100 < Number(big.n), `far below the data's size (${result.checkedRows} of ${big.n})`);
    assert.equal(events.find((e) => e.step === 'verified')?.detail, `${result.checkedRows} changed rows`);
    const warned = events.findIndex((e) => e.type === 'rollback-warning' && /public\.analytics_events\.seq/.test(String((e as { message?: string }).message)));
    assert.ok(warned >= 0 && warned < events.findIndex((e) => e.step === 'fenced'), 'rollback warns about the scan before it fences');
    assert.equal((await follower.exit).status, 0);
    await assertExact(stage.config);
    // the monolith's write record is gone with the window
    assert.deepEqual(await sql(stage.config.source, `SELECT tgname FROM pg_trigger WHERE tgname = 'shardctl_follow_record'`), []);
    // sequences were set without reading the shards' tables: a new id is past every id any server holds
    const ids = async (url: string) => BigInt((await sql(url, 'SELECT coalesce(max(id), 0)::text AS m FROM themes'))[0].m);
    const highest = (await Promise.all([stage.config.source, ...stage.config.shards.map((x) => x.primary)].map(ids))).reduce((a, b) => (a > b ? a : b));
    const [fresh] = await sql(stage.config.source, `INSERT INTO themes (restaurant_id, name, is_default, colors, font, updated_at) VALUES ($1, 'after', false, '{}', 'f', now()) RETURNING id::text AS id`, [mine[0]]);
    assert.ok(BigInt(fresh.id) > highest, `${fresh.id} > ${highest}`);
  });

  it("the sequence columns whose max() scans the table are the ones the planner scans (the oracle: EXPLAIN)", async () => {
    const url = stage.config.source;
    await sql(url, `CREATE TABLE seq_probe_a (id bigserial PRIMARY KEY, n bigserial)`);
    await sql(url, `CREATE TABLE seq_probe_b (k int, s serial)`);
    await sql(url, `CREATE INDEX ON seq_probe_b (s) WHERE s > 10`); // partial: max() cannot use it
    await sql(url, `CREATE TABLE seq_probe_p (id bigserial, r int NOT NULL) PARTITION BY RANGE (r)`);
    await sql(url, `CREATE TABLE seq_probe_p1 PARTITION OF seq_probe_p FOR VALUES FROM (0) TO (1000)`);
    await sql(url, `CREATE TABLE seq_probe_p2 PARTITION OF seq_probe_p FOR VALUES FROM (1000) TO (2000)`);
    await sql(url, `CREATE INDEX ON seq_probe_p (id)`);
    await sql(url, `INSERT INTO seq_probe_a (id) SELECT g FROM generate_series(1, 5000) g`);
    await sql(url, `INSERT INTO seq_probe_b (k) SELECT g FROM generate_series(1, 5000) g`);
    await sql(url, `INSERT INTO seq_probe_p (r) SELECT g % 2000 FROM generate_series(1, 5000) g`);
    await sql(url, `ANALYZE seq_probe_a, seq_probe_b, seq_probe_p`);
    const probe = (name: string, cols: string[]): TableModel => {
      const columns = cols.map((c) => ({ name: c, type: 'bigint', notNull: true, hasDefault: true, generated: false, sequence: 'x' }));
      return { config: { schema: 'public', name, route: { kind: 'reference' } }, name: `public.${name}`, info: { table: `public.${name}`, columns, primaryKey: [], indexes: [] }, columns: cols } as unknown as TableModel;
    };
    const tables = [probe('seq_probe_a', ['id', 'n']), probe('seq_probe_b', ['s']), probe('seq_probe_p', ['id'])];
    const planned: string[] = [];
    for (const t of tables) {
      for (const c of t.columns) {
        const [plan] = await sql(url, `EXPLAIN (FORMAT JSON) SELECT max(${c}) FROM ${t.name}`);
        if (/"Seq Scan"/.test(JSON.stringify(plan))) planned.push(`${t.name}.${c}`);
      }
    }
    assert.deepEqual(planned, ['public.seq_probe_a.n', 'public.seq_probe_b.s'], 'the planner scans exactly these');
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      assert.deepEqual(await scannedSequenceColumns(c, tables), planned);
    } finally {
      await c.end();
    }
    assert.match(scanWarning(planned)!, /^max\(col\) scans the table inside the fence for public\.seq_probe_a\.n, public\.seq_probe_b\.s: add an index/);
  });
});
