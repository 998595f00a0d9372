import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { startFleet, type Fleet } from '../harness/fleet/index.js';
import { parseConfig } from '../src/config/load.js';
import { migrate } from '../src/migrate/index.js';
import { rebalance } from '../src/rebalance/index.js';
import type { Config } from '../src/config/types.js';
import { sql } from './helpers/fleet.js';

/*
 * What the shards' write guards run per statement (fence/unit-guard.ts, set-guard.ts), counted by
 * PostgreSQL itself (pg_stat_get_xact_function_calls, track_functions = pl), never timed: after a
 * move (a `moved` fence on the old shard, the route guard live), a multi-row statement passes the
 * fence gate once per transaction, and its rows are checked by the statement trigger's joins: no
 * per-row call of the unit check (refuse) or the route check (route_check), which run only for a
 * unit they refuse; and an UPDATE that moves a row to a unit routed elsewhere is still refused with
 * 40001 naming unit and home, a write of the moved unit with 55000.
 */
describe('the write guards: calls per row on a shard after a move', () => {
  let fleet: Fleet;
  let config: Config;
  /** tenants whose rows the shard holds, by the test's own reading of the shards (the oracle of placement) */
  const tenantsOn = async (i: number) => (await sql(fleet.shards[i]!.primary.url(), 'SELECT DISTINCT tenant::int AS t FROM orders ORDER BY 1')).map((r) => r.t as number);
  let moved: number;

  before(async () => {
    fleet = await startFleet({ shards: 2 });
    for (const s of [fleet.source, ...fleet.shards.map((x) => x.primary)]) {
      await s.query('CREATE TABLE orders (id bigint PRIMARY KEY, tenant bigint NOT NULL, v int NOT NULL)');
      await s.query('CREATE TABLE lines (id bigint PRIMARY KEY, order_id bigint NOT NULL, v int NOT NULL)');
    }
    await fleet.source.query('INSERT INTO orders SELECT g, g % 40, 0 FROM generate_series(0, 199) g');
    await fleet.source.query('INSERT INTO lines SELECT g, g, 0 FROM generate_series(0, 199) g');
    const doc = {
      source: fleet.source.url(),
      strategy: { kind: 'jump', key: 'tenant', pins: {} as Record<string, string> },
      shards: fleet.shards.map((s) => ({ id: s.id, primary: s.primary.url() })),
      tables: [{ name: 'orders', key: 'tenant' }, { name: 'lines', via: 'order_id -> orders.id' }],
    };
    config = parseConfig(JSON.stringify(doc), 'guard-calls');
    await migrate(config, {});
    // a topology change: one tenant of s0 pinned to s1 (route guard live everywhere, a moved fence on s0)
    moved = (await tenantsOn(0))[0]!;
    doc.strategy.pins = { [String(moved)]: fleet.shards[1]!.id };
    config = parseConfig(JSON.stringify(doc), 'guard-calls');
    await rebalance(config, { apply: true, offline: true });
    assert.ok(!(await tenantsOn(0)).includes(moved), 'the pinned tenant left s0');
  });
  after(() => fleet?.stop());

  /** runs `f` in a transaction on s0 (rolled back), returns how often each guard function ran in it */
  const counted = async (f: (c: pg.Client) => Promise<unknown>) => {
    const c = new pg.Client({ connectionString: fleet.shards[0]!.primary.url() });
    await c.connect();
    try {
      await c.query(`SET track_functions = 'pl'`);
      await c.query('BEGIN');
      await f(c);
      const calls = async (fn: string) => Number((await c.query(`SELECT coalesce(pg_stat_get_xact_function_calls($1::regprocedure), 0) AS n`, [fn])).rows[0].n);
      return { gate: await calls('shardctl.fence_gate()'), refuse: await calls('shardctl.refuse(shardctl.fence_key)'), route: await calls('shardctl.route_check(text)') };
    } finally {
      await c.query('ROLLBACK').catch(() => undefined);
      await c.end();
    }
  };

  it('guards are live on s0: a moved fence and a routing rule', async () => {
    const s0 = fleet.shards[0]!.primary.url();
    assert.deepEqual((await sql(s0, `SELECT unit, role FROM shardctl.fenced_units`)).map((r) => `${r.unit}:${r.role}`), [`${moved}:moved`]);
    assert.ok((await sql(s0, 'SELECT count(*)::int AS n FROM shardctl.route_rules'))[0].n > 0);
  });

  it("the route guard's key (route_key64) is md5's first 8 bytes, unsigned, as the test computes them", async () => {
    const keys = [...Array.from({ length: 3000 }, (_, i) => String(i)), '', 'ünï ✓', 'a\tb', '\\N', '{x,y}', '東京'];
    const rows = await sql(fleet.shards[0]!.primary.url(), 'SELECT k, shardctl.route_key64(k)::text AS h FROM unnest($1::text[]) k', [keys]);
    const wrong = rows.filter((r) => r.h !== createHash('md5').update(r.k, 'utf8').digest().readBigUInt64BE(0).toString());
    assert.deepEqual(wrong, []);
    assert.ok(rows.some((r) => BigInt(r.h) >= 2n ** 63n), 'keys with the top bit set are among them');
  });

  it('an UPDATE keeping the unit: one gate per transaction, no unit check or routing per row', async () => {
    const here = await tenantsOn(0);
    const rows = Number((await sql(fleet.shards[0]!.primary.url(), 'SELECT count(*)::int AS n FROM orders'))[0].n);
    const orders = await counted((c) => c.query('UPDATE orders SET v = v + 1 WHERE tenant = ANY($1::bigint[])', [here]));
    assert.deepEqual(orders, { gate: 1, refuse: 0, route: 0 }, `orders: ${rows} rows updated`);
    const lines = await counted((c) => c.query('UPDATE lines SET v = v + 1'));
    assert.deepEqual(lines, { gate: 1, refuse: 0, route: 0 }, `lines (via): ${rows} rows updated`);
  });

  it('a multi-row INSERT: one gate per transaction, its rows checked and routed by the statement, no call per row', async () => {
    const here = await tenantsOn(0);
    const r = await counted((c) => c.query('INSERT INTO orders (id, tenant, v) SELECT 1000 + g, ($1::bigint[])[1 + g % cardinality($1::bigint[])], 0 FROM generate_series(0, 49) g', [here]));
    assert.deepEqual(r, { gate: 1, refuse: 0, route: 0 });
  });

  it('an UPDATE moving a row to a unit routed elsewhere is refused (40001, unit, home, way out); the moved unit with 55000', async () => {
    const s0 = fleet.shards[0]!.primary.url();
    const elsewhere = (await tenantsOn(1)).find((t) => t !== moved)!;
    const [row] = await sql(s0, 'SELECT id, tenant FROM orders ORDER BY id LIMIT 1');
    await assert.rejects(sql(s0, 'UPDATE orders SET tenant = $1 WHERE id = $2', [elsewhere, row.id]), (e: Error & { code?: string; hint?: string }) => {
      assert.equal(e.code, '40001');
      assert.match(e.message, new RegExp(`unit ${elsewhere} belongs on shard ${fleet.shards[1]!.id} .*not on shard ${fleet.shards[0]!.id}`));
      assert.match(e.hint ?? '', /routed by the catalog/);
      return true;
    });
    assert.deepEqual(await sql(s0, 'SELECT tenant::int AS t FROM orders WHERE id = $1', [row.id]), [{ t: Number(row.tenant) }], 'the row kept its tenant');
    await assert.rejects(sql(s0, 'UPDATE orders SET tenant = $1 WHERE id = $2', [moved, row.id]), (e: Error & { code?: string }) => e.code === '55000' && e.message.includes(`unit ${moved} has moved`));
    // in one transaction: a row passes, then a row of the moved unit is still refused
    await assert.rejects(
      counted(async (c) => {
        await c.query('INSERT INTO orders (id, tenant, v) VALUES (5000, $1, 0)', [row.tenant]);
        await c.query('INSERT INTO orders (id, tenant, v) VALUES (5001, $1, 0)', [moved]);
      }),
      (e: Error & { code?: string }) => e.code === '55000',
    );
    assert.deepEqual(await sql(s0, 'SELECT id FROM orders WHERE id >= 5000'), []);
    // a transaction that passed an older guard's gate (its setting: 'passed') before this guard was installed is checked all the same
    await assert.rejects(
      counted(async (c) => {
        await c.query(`SELECT set_config('shardctl.fence_gate', 'passed', true)`);
        await c.query('INSERT INTO orders (id, tenant, v) VALUES (5002, $1, 0)', [moved]);
      }),
      (e: Error & { code?: string }) => e.code === '55000',
    );
  });
});
