import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { connect, withClient } from '../src/db/connect.js';
import { loadConfig } from '../src/config/load.js';
import type { Stage } from '../harness/demo/stage.js';
import { stageMigrated } from './helpers/stage.js';
import { shardEndpoint } from '../src/db/endpoints.js';
import { fenceUnits, readFences, unfenceUnits } from '../src/fence/unit-fence.js';
import { installGuard } from '../src/fence/unit-guard.js';
import { loadModel, type Model } from '../src/tables/model.js';
import { runCliAsync, runCliKilledAtAsync } from './helpers/cli.js';
import { assertExact } from './helpers/exact.js';
import { sql } from './helpers/fleet.js';

const LEVELS = ['READ COMMITTED', 'REPEATABLE READ', 'SERIALIZABLE'] as const;

/** An application session: plain pg, none of shardctl's session settings (so no fence bypass). */
async function app(url: string, name = 'fence-test-app'): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url, application_name: name });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

describe('the write fence holds for every isolation level', () => {
  let stage: Stage;
  let model: Model;
  let url: string;
  let tenant: string; // fenced in the cases below
  let other: string; // never fenced
  let otherTheme: string;
  let tenantTheme: string;
  let tenantOrder: string;
  let product: string;
  before(async () => {
    stage = await stageMigrated({ kind: 'pos', shards: 2, scale: 0.01 });
    url = stage.config.shards[0]!.primary;
    const e = shardEndpoint(stage.config, 's0');
    model = await withClient(e, (c) => loadModel(stage.config, c, 'shard s0'));
    await withClient(e, (c) => installGuard(c, e, model));
    const ts = await sql(url, `SELECT restaurant_id::text AS t, min(id)::text AS theme FROM themes GROUP BY 1 HAVING count(*) > 0 ORDER BY 1 LIMIT 2`);
    [tenant, other] = [ts[0].t, ts[1].t];
    [tenantTheme, otherTheme] = [ts[0].theme, ts[1].theme];
    const o = await sql(url, `SELECT o.id::text AS o, i.product_id::text AS p FROM orders o JOIN order_items i ON i.order_id = o.id WHERE o.restaurant_id = $1 LIMIT 1`, [tenant]);
    [tenantOrder, product] = [o[0].o, o[0].p];
  });
  after(() => stage?.stop());

  const withFence = async <T>(fn: () => Promise<T>): Promise<T> => {
    const e = shardEndpoint(stage.config, 's0');
    await withClient(e, (c) => fenceUnits(c, e, stage.config, [{ unit: tenant, from: 's0', to: 's1', role: 'source' }]));
    try {
      return await fn();
    } finally {
      await withClient(e, (c) => unfenceUnits(c, [tenant]));
    }
  };

  const themeRow = (t: string) => `INSERT INTO themes (restaurant_id, name, is_default, colors, font, updated_at) VALUES (${t}, 'app', false, '{}', 'f', now())`;
  const writes: Record<string, (c: pg.Client) => Promise<unknown>> = {
    'INSERT': (c) => c.query(themeRow(tenant)),
    'UPDATE': (c) => c.query(`UPDATE themes SET name = 'renamed' WHERE id = ${tenantTheme}`),
    'UPDATE moving a row into the unit': (c) => c.query(`UPDATE themes SET restaurant_id = ${tenant} WHERE id = ${otherTheme}`),
    'UPDATE moving a row out of the unit': (c) => c.query(`UPDATE themes SET restaurant_id = ${other} WHERE id = ${tenantTheme}`),
    'DELETE': (c) => c.query(`DELETE FROM themes WHERE id = ${tenantTheme}`),
    'COPY': (c) =>
      pipeline(
        Readable.from([`${tenant}\tcopied\tf\t{}\tf\t2024-01-01 00:00:00+00\n`]),
        c.query(copyFrom('COPY themes (restaurant_id, name, is_default, colors, font, updated_at) FROM STDIN')),
      ),
    'INSERT into a via table': (c) =>
      c.query(`INSERT INTO order_items (order_id, product_id, quantity, unit_price, line_total, voided) VALUES (${tenantOrder}, ${product}, 1, 1, 1, false)`),
  };

  for (const level of LEVELS) {
    for (const [op, write] of Object.entries(writes)) {
      it(`${level}: ${op} in a transaction opened before the fence is refused`, async () => {
        const c = await app(url);
        try {
          await c.query(`BEGIN ISOLATION LEVEL ${level}`);
          await c.query('SELECT count(*) FROM themes'); // the snapshot is taken here, before the fence
          await withFence(async () => {
            // READ COMMITTED sees the fence; an older snapshot fails as a serialization failure
            const expected = level === 'READ COMMITTED' ? /unit \d+ is being moved from shard s0 to shard s1/ : /could not serialize access/;
            await assert.rejects(write(c), (e: { message: string; code: string }) => {
              assert.match(e.message, expected);
              assert.equal(e.code, level === 'READ COMMITTED' ? '55000' : '40001');
              return true;
            });
            await c.query('ROLLBACK');
            // the retry, with a fresh snapshot, sees the fence itself
            await c.query(`BEGIN ISOLATION LEVEL ${level}`);
            await assert.rejects(write(c), /is being moved/);
            await c.query('ROLLBACK');
          });
        } finally {
          await c.end();
        }
      });
    }
  }

  it('other units keep taking writes under every level while a unit is fenced', async () => {
    await withFence(async () => {
      for (const level of LEVELS) {
        const c = await app(url);
        try {
          await c.query(`BEGIN ISOLATION LEVEL ${level}`);
          await c.query(themeRow(other));
          await c.query('ROLLBACK');
        } finally {
          await c.end();
        }
      }
    });
  });

  it('a fence waits for a writer in flight at most as long as allowed, names it, and changes nothing', { timeout: 60_000 }, async () => {
    const e = shardEndpoint(stage.config, 's0');
    const writer = await app(url, 'long-writer');
    try {
      await writer.query('BEGIN');
      await writer.query(themeRow(other)); // holds the writers' side of the fence lock
      const fenced = withClient(e, (c) =>
        fenceUnits(c, e, stage.config, [{ unit: tenant, from: 's0', to: 's1', role: 'source' }], { lockTimeoutMs: 300, attempts: 2, backoffMs: 50 }),
      );
      await assert.rejects(fenced, (err: Error) => {
        assert.match(err.message, /shard s0 .*fencing unit \d+: gave up after 2 waits of 300 ms for a lock held by pid \d+ \(application 'long-writer'/);
        assert.ok(!err.message.includes(stage.fleet.source.password), "no password");
        return true;
      });
      assert.equal((await withClient(e, readFences)).has(tenant), false, 'nothing fenced');
      await writer.query('ROLLBACK');
    } finally {
      await writer.end();
    }
  });

  it('installing the guard waits for a long transaction at most as long as allowed and names it', { timeout: 60_000 }, async () => {
    const url1 = stage.config.shards[1]!.primary;
    const e = shardEndpoint(stage.config, 's1');
    // migrate installed the guard on s1: mark it outdated, so installing it again runs its DDL
    await sql(url1, `UPDATE shardctl.guard SET revision = 'outdated'`);
    const holder = await app(url1, 'report-job');
    try {
      await holder.query('BEGIN');
      const t1 = (await sql(url1, 'SELECT min(restaurant_id)::text AS t FROM themes'))[0].t;
      await holder.query(themeRow(t1)); // a write holding ROW EXCLUSIVE on themes
      await assert.rejects(
        withClient(e, (c) => installGuard(c, e, model, { lockTimeoutMs: 300, attempts: 2, backoffMs: 50 })),
        /installing the write fence: gave up after 2 waits of 300 ms for a lock held by pid \d+ \(application 'report-job'/,
      );
      await holder.query('ROLLBACK');
      await withClient(e, (c) => installGuard(c, e, model, { lockTimeoutMs: 300 }));
    } finally {
      await holder.end();
    }
  });

  it('the issue\'s reproduction: a REPEATABLE READ transaction opened before `pin --apply` cannot strand a row on the old shard', { timeout: 120_000 }, async () => {
    const cfg = stage.configPath;
    const c = await app(url);
    try {
      await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      await c.query('SELECT count(*) FROM themes');
      // stopped while the unit is fenced and not yet copied: a write now would be lost or stranded
      const r = await runCliKilledAtAsync('fenced', ['pin', tenant, 's1', '--apply', '--offline', '--config', cfg]);
      assert.equal(r.status, null, r.stderr);
      await assert.rejects(c.query(themeRow(tenant)), /could not serialize access/);
      await c.query('ROLLBACK');
    } finally {
      await c.end();
    }
    assert.equal((await runCliAsync(['rebalance', '--apply', '--config', cfg])).status, 0);
    await assertExact(loadConfig(cfg));
  });

  it('fence API: readFences lists what fenceUnits set; unfenceUnits lifts it', async () => {
    const e = shardEndpoint(stage.config, 's0');
    const c = await connect(e);
    try {
      await fenceUnits(c, e, stage.config, [{ unit: 'x1', from: 's0', to: 's1', role: 'target' }, { unit: 'x2', from: 's1', to: 's0', role: 'moved' }]);
      assert.deepEqual([...(await readFences(c)).values()].filter((f) => f.unit.startsWith('x')), [
        { unit: 'x1', from: 's0', to: 's1', role: 'target' },
        { unit: 'x2', from: 's1', to: 's0', role: 'moved' },
      ]);
      await unfenceUnits(c, ['x1', 'x2']);
      assert.equal([...(await readFences(c)).keys()].some((u) => u.startsWith('x')), false);
    } finally {
      await c.end();
    }
  });
});
