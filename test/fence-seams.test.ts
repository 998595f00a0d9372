import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { withClient } from '../src/db/connect.js';
import { loadConfig } from '../src/config/load.js';
import type { Config } from '../src/config/types.js';
import { stageFleet, type Stage } from '../harness/demo/stage.js';
import { migrate } from '../src/migrate/index.js';
import { rebalance } from '../src/rebalance/index.js';
import { topologyRouter } from '../src/routing/router.js';
import { editConfigFile, setPin } from '../src/config/edit-file.js';
import { shardEndpoint } from '../src/db/endpoints.js';
import { fenceUnits, unfenceUnits } from '../src/fence/unit-fence.js';
import { installGuard } from '../src/fence/unit-guard.js';
import { loadModel } from '../src/tables/model.js';
import { fenceSource, liftSourceFence, type SourceFenceKind } from '../src/fence/source-fence.js';
import { fenceOldPrimary, liftServerFence } from '../src/fence/server-fence.js';
import { runCliAsync } from './helpers/cli.js';
import { sql } from './helpers/fleet.js';

/**
 * The write fence at its seams (issue #23), on the film-rental fixture (store_id units, payment
 * partitioned by month): a shard's first move under writers whose snapshot predates it, sessions in
 * replication role, a prepared transaction in the way of a fence change, writes naming a partition.
 * Every write is made by a plain application session (none of shardctl's settings) and every
 * outcome is read back with the test's own SQL.
 */
const LEVELS = ['READ COMMITTED', 'REPEATABLE READ', 'SERIALIZABLE'] as const;
const MARK = 'written by an application after the move';

async function app(url: string, replicaRole = false): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url, application_name: 'fence-seams-app' });
  c.on('error', () => undefined);
  await c.connect();
  if (replicaRole) await c.query('SET session_replication_role = replica');
  return c;
}

/** Runs `text` in its own transaction on a fresh application session; the error, or undefined when it committed. */
async function write(url: string, text: string, opts: { replicaRole?: boolean; keep?: boolean } = {}): Promise<{ code?: string; message: string } | undefined> {
  const c = await app(url, opts.replicaRole);
  try {
    await c.query('BEGIN');
    await c.query(text);
    await c.query(opts.keep ? 'COMMIT' : 'ROLLBACK');
    return undefined;
  } catch (e) {
    return { code: (e as { code?: string }).code, message: (e as Error).message };
  } finally {
    await c.end();
  }
}

describe('the write fence at every seam (rental fixture, partitioned payment)', () => {
  let stage: Stage;
  let cfg: string;
  let tenantsOn: Map<string, string[]>;
  const url = (c: Config, shard: string) => c.shards.find((s) => s.id === shard)!.primary;

  before(async () => {
    stage = await stageFleet({ kind: 'rental', shards: 3, scale: 0.7 });
    cfg = stage.configPath;
    // the fixture's cross-store keys, accepted as crossing and dropped on the shards (the schemas test's way forward)
    const text = readFileSync(cfg, 'utf8')
      .replace('  - name: rental\n', '  - name: rental\n    crossingKeys: [ rental_customer_id_fkey, rental_staff_id_fkey ]\n')
      .replace('  - name: payment\n', '  - name: payment\n    crossingKeys: [ payment_p2022_01_customer_id_fkey, payment_p2022_01_staff_id_fkey, payment_p2022_02_customer_id_fkey ]\n');
    writeFileSync(cfg, text);
    for (const s of stage.config.shards) {
      await sql(s.primary, `ALTER TABLE rental DROP CONSTRAINT rental_customer_id_fkey, DROP CONSTRAINT rental_staff_id_fkey;
        ALTER TABLE payment_p2022_01 DROP CONSTRAINT payment_p2022_01_customer_id_fkey, DROP CONSTRAINT payment_p2022_01_staff_id_fkey;
        ALTER TABLE payment_p2022_02 DROP CONSTRAINT payment_p2022_02_customer_id_fkey`);
    }
    const config = loadConfig(cfg);
    assert.equal((await migrate(config)).ok, true);
    const router = topologyRouter(config);
    tenantsOn = new Map();
    for (const r of await sql(stage.config.source, 'SELECT store_id::text AS s FROM store ORDER BY store_id')) {
      const shard = router.shardFor(r.s);
      tenantsOn.set(shard, [...(tenantsOn.get(shard) ?? []), r.s]);
    }
  });
  after(() => stage?.stop());

  /**
   * Opens a writer per isolation level on `from`, each with its snapshot taken, then runs `move`
   * (which moves tenants[i] to `to`), then lets writer i insert tenants[i]'s store row on `from`.
   */
  async function writersAcrossFirstMove(from: string, to: string, move: (tenants: string[]) => Promise<void>) {
    const c0 = loadConfig(cfg);
    const tenants = (tenantsOn.get(from) ?? []).slice(0, LEVELS.length);
    assert.equal(tenants.length, LEVELS.length, `the fixture puts ${LEVELS.length} stores on ${from}`);
    const writers = await Promise.all(LEVELS.map(() => app(url(c0, from))));
    for (const [i, level] of LEVELS.entries()) {
      await writers[i]!.query(`BEGIN ISOLATION LEVEL ${level}`);
      await writers[i]!.query('SELECT count(*) FROM store'); // the snapshot predates the move
    }
    await move(tenants);
    const outcomes: { level: string; tenant: string; acked: boolean; code?: string }[] = [];
    for (const [i, level] of LEVELS.entries()) {
      const w = writers[i]!;
      try {
        await w.query(`INSERT INTO store (store_id, address, last_update) VALUES ($1, $2, now())`, [tenants[i], MARK]);
        await w.query('COMMIT');
        outcomes.push({ level, tenant: tenants[i]!, acked: true });
      } catch (e) {
        await w.query('ROLLBACK').catch(() => undefined);
        outcomes.push({ level, tenant: tenants[i]!, acked: false, code: (e as { code?: string }).code });
      } finally {
        await w.end();
      }
    }
    // the oracle: where each tenant's store rows are now, read with plain SQL
    const c = loadConfig(cfg);
    for (const o of outcomes) {
      const old = await sql(url(c, from), 'SELECT address FROM store WHERE store_id = $1', [o.tenant]);
      const now = await sql(url(c, to), 'SELECT address FROM store WHERE store_id = $1', [o.tenant]);
      assert.deepEqual(old, [], `${o.level}: no row of moved store ${o.tenant} is left or written on the old shard ${from}`);
      assert.equal(now.length, 1, `${o.level}: store ${o.tenant} is on ${to} once`);
      assert.notEqual(now[0].address, MARK);
    }
    assert.deepEqual(
      outcomes.map((o) => [o.level, o.acked, o.code]),
      [
        ['READ COMMITTED', false, '55000'], // sees the tombstone
        ['REPEATABLE READ', false, '40001'], // its snapshot cannot see it: a serialization failure, retried by the app
        ['SERIALIZABLE', false, '40001'],
      ],
    );
  }

  it("a shard's first move (pin --apply, online): writers opened before it cannot commit on the old shard", async () => {
    await writersAcrossFirstMove('s0', 's1', async (tenants) => {
      for (const t of tenants.slice(1)) editConfigFile(cfg, setPin(t, 's1'));
      const r = await runCliAsync(['pin', tenants[0]!, 's1', '--apply', '--config', cfg]);
      assert.equal(r.status, 0, r.stdout + r.stderr);
    });
  });

  it("a shard's first move (the engine's rebalance, --offline): writers opened before it cannot commit on the old shard", async () => {
    await writersAcrossFirstMove('s2', 's0', async (tenants) => {
      for (const t of tenants) editConfigFile(cfg, setPin(t, 's0'));
      const r = await rebalance(loadConfig(cfg), { apply: true, offline: true });
      assert.equal(r.ok, true, JSON.stringify(r.moves));
      assert.deepEqual(r.moves.map((m) => m.status), tenants.map(() => 'moved'));
    });
  });

  /** A store on `shard` (by the test's own SQL) and a rental of it, for writes that name a partition. */
  async function storeOn(shard: string, skip: string[] = []) {
    const r = await sql(
      url(loadConfig(cfg), shard),
      `SELECT i.store_id::text AS store, r.rental_id AS rental, r.customer_id AS customer, r.staff_id AS staff
         FROM rental r JOIN inventory i USING (inventory_id) WHERE NOT (i.store_id::text = ANY($1)) ORDER BY i.store_id, r.rental_id LIMIT 1`,
      [skip],
    );
    return r[0] as { store: string; rental: number; customer: number; staff: number };
  }
  const paymentIn = (p: string, x: { rental: number; customer: number; staff: number }, date: string) =>
    `INSERT INTO ${p} (payment_id, customer_id, staff_id, rental_id, amount, payment_date) VALUES (990000 + ${x.rental}, ${x.customer}, ${x.staff}, ${x.rental}, 1.00, '${date}')`;

  it('the unit fence holds for replication-role sessions and for writes naming a partition (attached later too)', async () => {
    const c = loadConfig(cfg);
    const e = shardEndpoint(c, 's1');
    const fenced = await storeOn('s1');
    const free = await storeOn('s1', [fenced.store]);
    await withClient(e, (x) => fenceUnits(x, e, c, [{ unit: fenced.store, from: 's1', to: 's2', role: 'source' }]));
    try {
      const u = url(c, 's1');
      const refused = /is being moved from shard s1 to shard s2/;
      const replica = await write(u, `UPDATE store SET address = 'replica role' WHERE store_id = ${fenced.store}`, { replicaRole: true, keep: true });
      assert.match(replica?.message ?? 'committed', refused, 'a session_replication_role = replica writer is refused');
      const partition = await write(u, paymentIn('payment_p2022_03', fenced, '2022-03-15'));
      assert.match(partition?.message ?? 'committed', refused, 'an INSERT naming a partition is refused');
      const update = await write(u, `UPDATE payment_p2022_01 SET amount = amount WHERE rental_id IN (SELECT rental_id FROM rental r JOIN inventory i USING (inventory_id) WHERE i.store_id = ${fenced.store})`);
      assert.match(update?.message ?? 'committed', refused, 'an UPDATE naming a partition is refused');
      assert.equal(await write(u, paymentIn('payment_p2022_03', free, '2022-03-15')), undefined, 'another unit writes through the partition');
      assert.equal(await write(u, paymentIn('payment', free, '2022-03-15')), undefined, 'and through the parent');
      // a partition created while the unit is fenced
      await sql(u, `CREATE TABLE payment_p2022_04 PARTITION OF payment FOR VALUES FROM ('2022-04-01 00:00:00+00') TO ('2022-05-01 00:00:00+00')`);
      try {
        const later = await write(u, paymentIn('payment_p2022_04', fenced, '2022-04-15'), { replicaRole: true });
        assert.match(later?.message ?? 'committed', refused, 'a partition attached later is fenced, also for a replica-role session');
      } finally {
        await sql(u, 'DROP TABLE payment_p2022_04');
      }
      // a table made apart, its columns in another order, attached as a partition while the unit is fenced
      await sql(u, `CREATE TABLE payment_p2022_05 (payment_date timestamptz NOT NULL, amount numeric(5,2) NOT NULL, rental_id integer NOT NULL,
                      staff_id integer NOT NULL, customer_id integer NOT NULL, payment_id integer NOT NULL);
                    ALTER TABLE payment ATTACH PARTITION payment_p2022_05 FOR VALUES FROM ('2022-05-01 00:00:00+00') TO ('2022-06-01 00:00:00+00')`);
      try {
        const attached = await write(u, paymentIn('payment_p2022_05', fenced, '2022-05-15'));
        assert.match(attached?.message ?? 'committed', refused, 'a partition with its own column order is fenced by its own rental_id');
        assert.equal(await write(u, paymentIn('payment_p2022_05', free, '2022-05-15')), undefined, 'and another unit writes through it');
      } finally {
        await sql(u, 'DROP TABLE payment_p2022_05');
      }
      assert.deepEqual(await sql(u, `SELECT count(*)::int AS n FROM store WHERE address = 'replica role'`), [{ n: 0 }]);
      assert.deepEqual(await sql(u, 'SELECT count(*)::int AS n FROM payment WHERE payment_id >= 990000'), [{ n: 0 }]);
    } finally {
      await withClient(e, (x) => unfenceUnits(x, [fenced.store]));
    }
  });

  /** Every write the statement fences must refuse: by plain and replica-role sessions, naming the parent or a partition, TRUNCATE too. */
  async function assertTableFenced(u: string, refused: RegExp, x: { store: string; rental: number; customer: number; staff: number }) {
    const cases: [string, string, boolean][] = [
      ['an UPDATE', `UPDATE store SET address = 'fenced' WHERE store_id = ${x.store}`, false],
      ['a replica-role UPDATE', `UPDATE store SET address = 'fenced' WHERE store_id = ${x.store}`, true],
      ['an INSERT naming the parent', paymentIn('payment', x, '2022-03-15'), false],
      ['an INSERT naming a partition', paymentIn('payment_p2022_03', x, '2022-03-15'), false],
      ['a replica-role INSERT naming a partition', paymentIn('payment_p2022_02', x, '2022-02-15'), true],
      ['a DELETE naming a partition', `DELETE FROM payment_p2022_01 WHERE rental_id = ${x.rental}`, false],
      ['a TRUNCATE of a partition', 'TRUNCATE payment_p2022_01', false],
    ];
    for (const [what, text, replicaRole] of cases) {
      const r = await write(u, text, { replicaRole, keep: true });
      assert.match(r?.message ?? 'committed', refused, `${what} is refused`);
    }
    await sql(u, `CREATE TABLE payment_p2022_04 PARTITION OF payment FOR VALUES FROM ('2022-04-01 00:00:00+00') TO ('2022-05-01 00:00:00+00')`);
    try {
      const r = await write(u, paymentIn('payment_p2022_04', x, '2022-04-15'), { replicaRole: true });
      assert.match(r?.message ?? 'committed', refused, 'an INSERT naming a partition attached after the fence is refused');
    } finally {
      await sql(u, 'DROP TABLE payment_p2022_04');
    }
  }

  for (const kind of ['cutover', 'rollback'] as SourceFenceKind[]) {
    it(`the ${kind} statement fence holds for replication-role sessions and for writes naming a partition`, async () => {
      const c = loadConfig(cfg);
      const u = url(c, 's1');
      const x = await storeOn('s1');
      const before = await sql(u, 'SELECT count(*)::int AS n, sum(amount)::text AS s FROM payment');
      const tables = c.tables.map((t) => `${t.schema}.${t.name}`);
      await withClient(shardEndpoint(c, 's1'), (s) => fenceSource(s, tables, 5000, kind));
      try {
        await assertTableFenced(u, kind === 'cutover' ? /is cut over/ : /is rolled back/, x);
      } finally {
        await withClient(shardEndpoint(c, 's1'), (s) => liftSourceFence(s, tables, kind));
      }
      assert.deepEqual(await sql(u, 'SELECT count(*)::int AS n, sum(amount)::text AS s FROM payment'), before, 'no payment was written or removed');
      assert.deepEqual(await sql(u, `SELECT count(*)::int AS n FROM store WHERE address = 'fenced'`), [{ n: 0 }]);
      // lifted: the application writes again, through the parent and the partition
      assert.equal(await write(u, paymentIn('payment_p2022_03', x, '2022-03-15')), undefined);
      assert.equal(await write(u, 'TRUNCATE payment_p2022_01'), undefined);
    });
  }

  it('the failover fence of an old primary holds for replication-role sessions and for writes naming a partition', async () => {
    const c = loadConfig(cfg);
    const u = url(c, 's1');
    const x = await storeOn('s1');
    const before = await sql(u, 'SELECT count(*)::int AS n, sum(amount)::text AS s FROM payment');
    await withClient(shardEndpoint(c, 's1'), (s) => fenceOldPrimary(s, c, 's1', 'replica-1'));
    try {
      await assertTableFenced(u, /failed over to replica-1/, x);
    } finally {
      await withClient(shardEndpoint(c, 's1'), (s) => liftServerFence(s, c));
    }
    assert.deepEqual(await sql(u, 'SELECT count(*)::int AS n, sum(amount)::text AS s FROM payment'), before);
    assert.equal(await write(u, paymentIn('payment_p2022_03', x, '2022-03-15')), undefined);
  });

  it('a prepared transaction in the way of a fence change is named, with the way out', { timeout: 120_000 }, async () => {
    const c = loadConfig(cfg);
    const e = shardEndpoint(c, 's1');
    const u = url(c, 's1');
    const x = await storeOn('s1');
    const other = await storeOn('s1', [x.store]);
    const gid = 'fence-seams-in-doubt';
    const p = await app(u);
    await p.query('BEGIN');
    await p.query(`UPDATE store SET address = address WHERE store_id = ${other.store}`);
    await p.query(`PREPARE TRANSACTION '${gid}'`);
    await p.end();
    try {
      const named = (err: Error & { exitCode?: number }) => {
        assert.match(err.message, new RegExp(`prepared transaction '${gid}'`));
        assert.match(err.message, /shard s1/);
        assert.match(err.message, /database \S+/);
        assert.match(err.message, /owner \S+/);
        assert.match(err.message, /prepared at \d{4}-\d\d-\d\d/);
        assert.match(`${err.message} ${(err as { hint?: string }).hint ?? ''}`, /shardctl resolve/);
        return true;
      };
      const fast = { lockTimeoutMs: 200, attempts: 2, backoffMs: 50 };
      await assert.rejects(withClient(e, (s) => fenceUnits(s, e, c, [{ unit: x.store, from: 's1', to: 's2', role: 'source' }], fast)), named);
      const tables = c.tables.map((t) => `${t.schema}.${t.name}`);
      await assert.rejects(withClient(e, (s) => fenceSource(s, tables, 500, 'rollback', 'shard s1')), named);
      await assert.rejects(withClient(e, (s) => fenceOldPrimary(s, c, 's1', 'replica-1')), named);
      assert.deepEqual(await sql(u, `SELECT count(*)::int AS n FROM pg_trigger WHERE tgname IN ('shardctl_rollback_fence', 'shardctl_failed_over')`), [{ n: 0 }], 'nothing was changed');
      assert.deepEqual(await sql(u, 'SELECT count(*)::int AS n FROM shardctl.fenced_units WHERE unit = $1', [x.store]), [{ n: 0 }]);
    } finally {
      await sql(u, `ROLLBACK PREPARED '${gid}'`);
    }
  });

  it('add-shard installs the guard on the new shard before any move touches it (its epoch row predates every snapshot there)', async () => {
    const server = (await stage.fleet.addShard()).primary;
    const r = await runCliAsync(['add-shard', '--config', cfg, '--id', 's3', '--primary', server.url(), '--apply']);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const u = server.url();
    assert.deepEqual(await sql(u, `SELECT count(*)::int AS n FROM shardctl.fence_epoch`).catch((e) => e.message), [{ n: 1 }]);
    // the row trigger on a partitioned table and on one with a foreign key to a sharded table (its
    // check must not speak before the guard), a plain table's three statement triggers otherwise
    const triggers = await sql(u, `SELECT c.relname AS t, string_agg(g.tgname || ':' || g.tgenabled::text, ',' ORDER BY g.tgname) AS enabled FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid
      WHERE g.tgname LIKE 'shardctl_fence%' AND NOT g.tgisinternal AND g.tgparentid = 0 GROUP BY c.relname, c.relkind ORDER BY 1`);
    const c = loadConfig(cfg);
    const sharded = c.tables.filter((t) => t.route.kind !== 'reference').map((t) => t.name).sort();
    const children = new Set((await sql(u, `SELECT DISTINCT c.relname AS t FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class p ON p.oid = k.confrelid
      WHERE k.contype = 'f' AND NOT c.relispartition AND p.relname = ANY($1::text[])`, [sharded])).map((x) => x.t as string));
    assert.ok(children.size > 0 && children.size < sharded.length - 1, `the fixture has children and parents: ${[...children]}`);
    const always = (t: string) => (t === 'payment' || children.has(t) ? 'shardctl_fence:A' : 'shardctl_fence_delete:A,shardctl_fence_insert:A,shardctl_fence_update:A');
    assert.deepEqual(triggers, sharded.map((t) => ({ t, enabled: always(t) })), 'ALWAYS fence triggers on every sharded table');
    // A guard that came after an application snapshot (as on a shard whose first move installed
    // it): that transaction meets a fence it cannot see and must not pass it.
    await sql(u, 'DROP SCHEMA shardctl CASCADE');
    const w = await app(u);
    try {
      await w.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      await w.query('SELECT count(*) FROM store');
      const e = shardEndpoint(c, 's3');
      const model = await withClient(e, (x) => loadModel(c, x, 'shard s3'));
      await withClient(e, (x) => installGuard(x, e, model));
      await withClient(e, (x) => fenceUnits(x, e, c, [{ unit: '999', from: 's3', to: 's0', role: 'source' }]));
      await assert.rejects(w.query(`INSERT INTO store (store_id, address, last_update) VALUES (999, 'x', now())`), (err: { code: string }) => err.code === '40001');
    } finally {
      await w.end();
    }
    assert.deepEqual(await sql(u, 'SELECT count(*)::int AS n FROM store WHERE store_id = 999'), [{ n: 0 }], 'the write past the unseen fence did not land');
  });
});
