import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { startFleet, type Fleet } from '../harness/fleet/index.js';
import { parseConfig } from '../src/config/load.js';
import { migrate } from '../src/migrate/index.js';
import { rebalance } from '../src/rebalance/index.js';
import { withClient } from '../src/db/connect.js';
import { shardEndpoint } from '../src/db/endpoints.js';
import { fenceUnits, unfenceUnits } from '../src/fence/unit-fence.js';
import { installGuard } from '../src/fence/unit-guard.js';
import { loadModel } from '../src/tables/model.js';
import type { Config } from '../src/config/types.js';
import { sql } from './helpers/fleet.js';

/*
 * The set-based guard (fence/set-guard.ts) at its seams, on real servers: after a move (a `moved`
 * fence on s0, the route guard live), multi-row statements, COPY, INSERT … ON CONFLICT, UPDATEs
 * changing or keeping the unit, a fenced unit, a partitioned table written through a partition
 * (attached later too), replication-role and bypassing sessions, and a guard installed over an
 * older one. Every write is an application session's (none of shardctl's settings); outcomes are
 * read back with the test's own SQL, the placement of tenants from the shards' own rows.
 */
describe('the set-based write guard: statements, COPY, upserts, partitions, upgrades', () => {
  let fleet: Fleet;
  let config: Config;
  let s0: string;
  let moved: number;
  /** tenants s0 holds / s1 holds (the test's own reading of the rows) */
  let here: number[];
  let elsewhere: number;
  const tenantsOn = async (i: number) => (await sql(fleet.shards[i]!.primary.url(), 'SELECT DISTINCT tenant::int AS t FROM orders ORDER BY 1')).map((r) => r.t as number);

  before(async () => {
    fleet = await startFleet({ shards: 2 });
    for (const s of [fleet.source, ...fleet.shards.map((x) => x.primary)]) {
      await s.query('CREATE TABLE orders (id bigint PRIMARY KEY, tenant bigint NOT NULL, v int NOT NULL)');
      await s.query('CREATE TABLE lines (id bigint PRIMARY KEY, order_id bigint NOT NULL, v int NOT NULL)');
      await s.query('CREATE TABLE events (id bigint NOT NULL, tenant bigint NOT NULL, v int NOT NULL, PRIMARY KEY (id)) PARTITION BY RANGE (id)');
      await s.query('CREATE TABLE events_a PARTITION OF events FOR VALUES FROM (0) TO (100000)');
      await s.query('CREATE TABLE events_b PARTITION OF events FOR VALUES FROM (100000) TO (200000)');
    }
    await fleet.source.query('INSERT INTO orders SELECT g, g % 40, 0 FROM generate_series(0, 199) g');
    await fleet.source.query('INSERT INTO lines SELECT g, g, 0 FROM generate_series(0, 199) g');
    await fleet.source.query('INSERT INTO events SELECT g, g % 40, 0 FROM generate_series(0, 199) g');
    const doc = {
      source: fleet.source.url(),
      strategy: { kind: 'jump', key: 'tenant', pins: {} as Record<string, string> },
      shards: fleet.shards.map((s) => ({ id: s.id, primary: s.primary.url() })),
      tables: [{ name: 'orders', key: 'tenant' }, { name: 'lines', via: 'order_id -> orders.id' }, { name: 'events', key: 'tenant' }],
    };
    config = parseConfig(JSON.stringify(doc), 'guard-set');
    await migrate(config, {});
    moved = (await tenantsOn(0))[0]!;
    doc.strategy.pins = { [String(moved)]: fleet.shards[1]!.id };
    config = parseConfig(JSON.stringify(doc), 'guard-set');
    await rebalance(config, { apply: true, offline: true });
    s0 = fleet.shards[0]!.primary.url();
    here = await tenantsOn(0);
    assert.ok(!here.includes(moved), 'the pinned tenant left s0');
    elsewhere = (await tenantsOn(1)).find((t) => t !== moved)!;
  });
  after(() => fleet?.stop());

  /** Runs `f` in a transaction of a fresh application session on s0; the error (code, message), or undefined when it committed. */
  async function app(f: (c: pg.Client) => Promise<unknown>, opts: { setup?: string } = {}): Promise<{ code?: string; message: string } | undefined> {
    const c = new pg.Client({ connectionString: s0, application_name: 'guard-set-app' });
    c.on('error', () => undefined);
    await c.connect();
    try {
      if (opts.setup) await c.query(opts.setup);
      await c.query('BEGIN');
      await f(c);
      await c.query('COMMIT');
      return undefined;
    } catch (e) {
      await c.query('ROLLBACK').catch(() => undefined);
      return { code: (e as { code?: string }).code, message: (e as Error).message };
    } finally {
      await c.end();
    }
  }
  const count = async (text: string, params: unknown[] = []) => Number((await sql(s0, text, params))[0].n);
  const misrouted = (e: { code?: string; message: string } | undefined, unit: number) => {
    assert.equal(e?.code, '40001', e?.message ?? 'committed');
    assert.match(e!.message, new RegExp(`unit ${unit} belongs on shard ${fleet.shards[1]!.id} .*not on shard ${fleet.shards[0]!.id}`));
  };
  const movedAway = (e: { code?: string; message: string } | undefined) => {
    assert.equal(e?.code, '55000', e?.message ?? 'committed');
    assert.match(e!.message, new RegExp(`unit ${moved} has moved to shard ${fleet.shards[1]!.id}`));
  };
  /** rows of `tenants`, ids from `id` on */
  const rows = (id: number, tenants: number[], n: number) => Array.from({ length: n }, (_, i) => [id + i, tenants[i % tenants.length]!]);
  const insertMany = (c: pg.Client, table: string, r: number[][]) =>
    c.query(`INSERT INTO ${table} (id, tenant, v) SELECT i, t, 0 FROM unnest($1::bigint[], $2::bigint[]) AS x(i, t)`, [r.map((x) => x[0]), r.map((x) => x[1])]);

  it('the guard on s0: statement triggers on the plain tables, the row trigger on the partitioned one, all ALWAYS', async () => {
    const triggers = await sql(s0, `SELECT c.relname AS t, g.tgname AS name, g.tgenabled AS on FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid
      WHERE g.tgname LIKE 'shardctl_fence%' AND g.tgparentid = 0 ORDER BY 1, 2`);
    assert.deepEqual(triggers.map((x) => `${x.t}:${x.name}:${x.on}`), [
      'events:shardctl_fence:A',
      'lines:shardctl_fence_delete:A', 'lines:shardctl_fence_insert:A', 'lines:shardctl_fence_update:A',
      'orders:shardctl_fence_delete:A', 'orders:shardctl_fence_insert:A', 'orders:shardctl_fence_update:A',
    ]);
  });

  it('a multi-row INSERT of home tenants lands; one row of a tenant homed elsewhere refuses the statement (40001, unit, home); a moved one (55000)', async () => {
    assert.equal(await app((c) => insertMany(c, 'orders', rows(10_000, here, 500))), undefined);
    assert.equal(await count('SELECT count(*) AS n FROM orders WHERE id >= 10000 AND id < 11000'), 500);
    misrouted(await app((c) => insertMany(c, 'orders', [...rows(11_000, here, 300), [11_300, elsewhere], ...rows(11_301, here, 10)])), elsewhere);
    movedAway(await app((c) => insertMany(c, 'orders', [...rows(12_000, here, 300), [12_300, moved]])));
    assert.equal(await count('SELECT count(*) AS n FROM orders WHERE id >= 11000 AND id < 13000'), 0, 'nothing of the refused statements landed');
    // via: lines of an order the moved tenant had on s0 do not exist any more; a line naming an order of a fenced tenant is below
  });

  it('COPY into a shard table: home rows land, a row of a tenant homed elsewhere refuses the whole COPY', async () => {
    const copy = (lines: string) => async (c: pg.Client) => pipeline(Readable.from([lines]), c.query(copyFrom('COPY orders (id, tenant, v) FROM STDIN')));
    const good = rows(20_000, here, 200).map((x) => `${x[0]}\t${x[1]}\t0\n`).join('');
    assert.equal(await app(copy(good)), undefined);
    assert.equal(await count('SELECT count(*) AS n FROM orders WHERE id >= 20000 AND id < 21000'), 200);
    const bad = [...rows(21_000, here, 200), [21_200, elsewhere]].map((x) => `${x[0]}\t${x[1]}\t0\n`).join('');
    misrouted(await app(copy(bad)), elsewhere);
    assert.equal(await count('SELECT count(*) AS n FROM orders WHERE id >= 21000 AND id < 22000'), 0);
  });

  it('INSERT … ON CONFLICT: an upsert keeping the tenant passes, one moving a row to a tenant homed elsewhere is refused', async () => {
    const upsert = (set: string, r: number[][]) => (c: pg.Client) =>
      c.query(`INSERT INTO orders (id, tenant, v) SELECT i, t, 0 FROM unnest($1::bigint[], $2::bigint[]) AS x(i, t) ON CONFLICT (id) DO UPDATE SET ${set}`, [r.map((x) => x[0]), r.map((x) => x[1])]);
    // rows 10000… exist (the first test): half of these conflict
    assert.equal(await app(upsert('v = orders.v + 1', rows(10_250, here, 500))), undefined);
    assert.equal(await count('SELECT count(*) AS n FROM orders WHERE id >= 10000 AND id < 11000 AND v = 1'), 250);
    assert.equal(await count('SELECT count(*) AS n FROM orders WHERE id >= 10500 AND id < 10750'), 250);
    misrouted(await app(upsert(`tenant = ${elsewhere}`, rows(10_000, here, 3))), elsewhere);
    movedAway(await app(upsert(`tenant = ${moved}`, rows(10_000, here, 3))));
    misrouted(await app(upsert('v = 7', [[13_000, elsewhere]])), elsewhere);
    assert.equal(await count(`SELECT count(*) AS n FROM orders WHERE tenant IN (${elsewhere}, ${moved}) OR v = 7`), 0);
  });

  it('an UPDATE moving rows to a tenant homed elsewhere is refused; one keeping the tenant, or moving rows between home tenants, passes', async () => {
    misrouted(await app((c) => c.query(`UPDATE orders SET tenant = ${elsewhere} WHERE id IN (SELECT id FROM orders ORDER BY id LIMIT 5)`)), elsewhere);
    movedAway(await app((c) => c.query(`UPDATE orders SET tenant = ${moved} WHERE id IN (SELECT id FROM orders ORDER BY id LIMIT 5)`)));
    assert.equal(await app((c) => c.query('UPDATE orders SET v = v + 10')), undefined);
    assert.equal(await app((c) => c.query(`UPDATE orders SET tenant = ${here[1]} WHERE tenant = ${here[0]}`)), undefined);
    assert.equal(await count(`SELECT count(*) AS n FROM orders WHERE tenant IN (${elsewhere}, ${moved})`), 0);
    assert.equal(await count(`SELECT count(*) AS n FROM orders WHERE v < 10`), 0, 'the UPDATE keeping its tenants changed every row');
  });

  it('a fenced unit: its INSERT, UPDATE, DELETE (through a via table too) refused with 55000; the others pass', async () => {
    const unit = here[2]!;
    const e = shardEndpoint(config, fleet.shards[0]!.id);
    await withClient(e, (x) => fenceUnits(x, e, config, [{ unit: String(unit), from: 's0', to: 's1', role: 'source' }]));
    try {
      const fenced = (r: { code?: string; message: string } | undefined) => {
        assert.equal(r?.code, '55000', r?.message ?? 'committed');
        assert.match(r!.message, new RegExp(`unit ${unit} is being moved from shard s0 to shard s1`));
      };
      const before = await sql(s0, 'SELECT count(*)::int AS n, sum(v)::int AS v FROM orders');
      fenced(await app((c) => insertMany(c, 'orders', [...rows(30_000, [here[3]!], 100), [30_100, unit]])));
      fenced(await app((c) => c.query('UPDATE orders SET v = v + 1')));
      fenced(await app((c) => c.query(`DELETE FROM orders WHERE tenant IN (${unit}, ${here[3]})`)));
      fenced(await app((c) => c.query(`UPDATE lines SET v = v + 1 WHERE order_id IN (SELECT id FROM orders WHERE tenant = ${unit})`)));
      fenced(await app((c) => c.query(`INSERT INTO lines (id, order_id, v) SELECT 40000 + id, id, 0 FROM orders WHERE tenant IN (${unit}, ${here[3]})`)));
      fenced(await app((c) => insertMany(c, 'events_b', rows(150_000, [unit], 3))));
      assert.deepEqual(await sql(s0, 'SELECT count(*)::int AS n, sum(v)::int AS v FROM orders'), before, 'orders as they were');
      assert.equal(await count('SELECT count(*) AS n FROM lines WHERE id >= 40000'), 0);
      assert.equal(await app((c) => c.query(`UPDATE orders SET v = v + 1 WHERE tenant = ${here[3]}`)), undefined, 'another unit writes');
      assert.equal(await app((c) => c.query(`INSERT INTO lines (id, order_id, v) SELECT 40000 + id, id, 0 FROM orders WHERE tenant = ${here[3]}`)), undefined);
    } finally {
      await withClient(e, (x) => unfenceUnits(x, [String(unit)]));
    }
  });

  it('a partitioned table: writes naming the parent or a partition, attached later too, are checked row by row', async () => {
    misrouted(await app((c) => insertMany(c, 'events', [...rows(50_000, here, 50), [50_050, elsewhere]])), elsewhere);
    misrouted(await app((c) => insertMany(c, 'events_a', [...rows(50_000, here, 50), [50_050, elsewhere]])), elsewhere);
    movedAway(await app((c) => c.query(`UPDATE events_b SET tenant = ${moved} WHERE id IN (SELECT id FROM events_b LIMIT 1)`).then(async () => insertMany(c, 'events_b', [[150_001, moved]]))));
    await sql(s0, 'CREATE TABLE events_c (v int NOT NULL, tenant bigint NOT NULL, id bigint NOT NULL)');
    await sql(s0, 'ALTER TABLE events ATTACH PARTITION events_c FOR VALUES FROM (200000) TO (300000)');
    try {
      misrouted(await app((c) => insertMany(c, 'events_c', [...rows(200_000, here, 5), [200_005, elsewhere]])), elsewhere);
      assert.equal(await app((c) => insertMany(c, 'events_c', rows(200_000, here, 5))), undefined, 'home tenants write through it');
      assert.equal(await count('SELECT count(*) AS n FROM events_c'), 5);
    } finally {
      await sql(s0, 'DROP TABLE events_c');
    }
    assert.equal(await count(`SELECT count(*) AS n FROM events WHERE id >= 50000 OR tenant IN (${elsewhere}, ${moved})`), 0);
  });

  it('a replication-role session is checked as any other; a session bypassing the guard (shardctl\'s own) is not', async () => {
    misrouted(await app((c) => insertMany(c, 'orders', rows(60_000, [elsewhere], 3)), { setup: 'SET session_replication_role = replica' }), elsewhere);
    assert.equal(await count('SELECT count(*) AS n FROM orders WHERE id >= 60000 AND id < 61000'), 0);
    assert.equal(await app((c) => insertMany(c, 'orders', rows(60_000, [elsewhere], 3)), { setup: 'SET session_replication_role = replica; SET shardctl.bypass = on' }), undefined);
    assert.equal(await count('SELECT count(*) AS n FROM orders WHERE id >= 60000 AND id < 61000'), 3);
    await sql(s0, 'SET shardctl.bypass = on; DELETE FROM orders WHERE id >= 60000 AND id < 61000');
  });

  it('installing the guard over an older one (its row trigger) replaces the triggers, never doubles them', async () => {
    const e = shardEndpoint(config, fleet.shards[0]!.id);
    // an older guard's shape: the row trigger on a plain table, a stale revision
    await sql(s0, `CREATE TRIGGER shardctl_fence BEFORE INSERT OR UPDATE OR DELETE ON orders FOR EACH ROW EXECUTE FUNCTION shardctl."fence_public.orders"();
                   UPDATE shardctl.guard SET revision = 'older'`);
    const model = await withClient(e, (x) => loadModel(config, x, 'shard s0'));
    await withClient(e, (x) => installGuard(x, e, model));
    await sql(s0, `UPDATE shardctl.guard SET revision = 'older'`);
    await withClient(e, (x) => installGuard(x, e, model));
    const triggers = await sql(s0, `SELECT c.relname AS t, g.tgname AS name, g.tgenabled AS on FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid
      WHERE g.tgname LIKE 'shardctl%' AND c.relname IN ('orders', 'events', 'events_a') ORDER BY 1, 2`);
    assert.deepEqual(triggers.map((x) => `${x.t}:${x.name}:${x.on}`), [
      'events:shardctl_fence:A', 'events_a:shardctl_fence:A',
      'orders:shardctl_fence_delete:A', 'orders:shardctl_fence_insert:A', 'orders:shardctl_fence_update:A',
    ]);
    misrouted(await app((c) => insertMany(c, 'orders', rows(70_000, [elsewhere], 2))), elsewhere);
  });
});
