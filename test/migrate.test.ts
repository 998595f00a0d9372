import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { Catalog } from '../src/catalog/catalog.js';
import { stageFleet, type Stage } from '../harness/demo/stage.js';
import { migrate } from '../src/migrate/index.js';
import { topologyRouter } from '../src/routing/router.js';
import { runCli, watchCli } from './helpers/cli.js';
import { assertExact } from './helpers/exact.js';
import { resetShards, rowVersions, sql } from './helpers/fleet.js';
import { migrateExit } from '../commands/exit-codes.js';

describe('migrate: POS fixture (jump)', () => {
  let stage: Stage;
  let cfg: string;
  before(async () => {
    stage = await stageFleet({ kind: 'pos', shards: 3, scale: 0.012 });
    cfg = stage.configPath;
  });
  after(() => stage?.stop());

  it('plan: inventory, assignment by the router, totals, imbalance; --out feeds migrate --plan', async () => {
    const r = runCli(['plan', '--config', cfg, '--json', '--out', `${stage.fleet.dir}/plan.json`]);
    assert.equal(r.status, 0, r.stderr);
    const p = JSON.parse(r.stdout);
    assert.equal(p.units, 12);
    assert.equal(p.unplaced, 12);
    assert.deepEqual(p.moves, []);
    const router = topologyRouter(stage.config);
    for (const a of p.assignment) assert.equal(a.shard, router.shardFor(a.unit));
    const srcRows = await sql(stage.config.source, 'SELECT (SELECT count(*) FROM orders) AS o, (SELECT count(*) FROM order_items) AS i');
    assert.equal(p.tables.find((t: { table: string }) => t.table === 'public.orders').rows, Number(srcRows[0].o));
    assert.equal(p.tables.find((t: { table: string }) => t.table === 'public.order_items').rows, Number(srcRows[0].i));
    assert.equal(p.shards.reduce((n: number, s: { rows: number }) => n + s.rows, 0), p.rows);
    const max = Math.max(...p.shards.map((s: { bytes: number }) => s.bytes));
    assert.ok(Math.abs(p.imbalance - max / (p.bytes / 3)) < 1e-9);
    const human = runCli(['plan', '--config', cfg]);
    assert.match(human.stdout, /imbalance \(max\/mean bytes\): \d\.\d\d/);
    assert.match(human.stdout, /12 tenants not placed yet/);
  });

  it('copies every row to exactly the right shard and journals each unit with its proof', async () => {
    const r = runCli(['migrate', '--config', cfg, '--json', '--plan', `${stage.fleet.dir}/plan.json`]);
    assert.equal(r.status, 0, r.stderr);
    const result = JSON.parse(r.stdout);
    assert.equal(result.ok, true);
    assert.equal(result.units.copied, 12);
    assert.equal(result.units.failed, 0);
    await assertExact(stage.config);
    const placed = await sql(stage.config.catalog, 'SELECT unit, shard FROM shardctl.placements');
    const router = topologyRouter(stage.config);
    assert.equal(placed.length, 12);
    for (const p of placed) assert.equal(p.shard, router.shardFor(p.unit));
    const proofs = await sql(stage.config.catalog, `SELECT count(*) AS n FROM shardctl.placement_tables WHERE checksum <> '0'`);
    assert.ok(Number(proofs[0].n) >= 12 * 7, 'a proof per unit and table');
    const runs = await sql(stage.config.catalog, `SELECT command, status FROM shardctl.runs`);
    assert.deepEqual(runs, [{ command: 'migrate', status: 'ok' }]);
    // the progress was NDJSON on stderr, the result JSON on stdout
    assert.match(r.stderr, /^\{"type":"start"/m);
  });

  it('a rerun is a no-op: nothing copied, no row rewritten', async () => {
    const before = await rowVersions(stage.config);
    const r = await migrate(stage.config);
    assert.equal(r.units.copied, 0);
    assert.equal(r.units.skipped, 12);
    assert.equal(await rowVersions(stage.config), before);
  });

  it('--tables re-copies only those tables: a damaged reference table is repaired, nothing new is placed', async () => {
    const s2 = stage.config.shards[2]!.primary;
    await sql(s2, `UPDATE currencies SET name = 'tampered' WHERE code = 'USD'`);
    const placedBefore = await sql(stage.config.catalog, 'SELECT count(*) AS n FROM shardctl.placements');
    const r = await migrate(stage.config, { tables: ['currencies'] });
    assert.equal(r.ok, true);
    assert.equal(r.units.copied, 0);
    assert.deepEqual(r.reference.filter((x) => x.changed).map((x) => x.shard), ['s2']);
    assert.deepEqual(await sql(stage.config.catalog, 'SELECT count(*) AS n FROM shardctl.placements'), placedBefore);
    await assertExact(stage.config);
  });

  it('a PostgreSQL error outside the batches reaches the user with shard, table, SQLSTATE, detail and hint, not as a bug', async () => {
    const s2 = stage.config.shards[2]!.primary;
    await sql(s2, `UPDATE currencies SET name = 'tampered' WHERE code = 'USD'`);
    await sql(
      s2,
      `CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
         RAISE EXCEPTION 'currencies are frozen' USING ERRCODE = 'P0001', DETAIL = 'a DBA froze them', HINT = 'ask the DBA', SCHEMA = 'public', TABLE = 'currencies';
       END $$`,
    );
    await sql(s2, 'CREATE TRIGGER refuse BEFORE INSERT OR UPDATE OR DELETE ON currencies FOR EACH ROW EXECUTE FUNCTION refuse()');
    try {
      const r = runCli(['migrate', '--config', cfg, '--tables', 'currencies']);
      assert.equal(r.status, 3, r.stderr);
      assert.match(r.stderr, /^shardctl: error: shard s2, reference tables, table public\.currencies: currencies are frozen \[P0001\]$/m);
      assert.match(r.stderr, /^  detail: a DBA froze them$/m);
      assert.match(r.stderr, /^hint: ask the DBA$/m);
      assert.doesNotMatch(r.stderr, /internal error|This is a bug/);
      const runs = await sql(stage.config.catalog, `SELECT status, summary->>'error' AS error FROM shardctl.runs ORDER BY id DESC LIMIT 1`);
      assert.equal(runs[0].status, 'failed');
      assert.match(runs[0].error, /shard s2, reference tables, table public\.currencies: currencies are frozen \[P0001\]/);
    } finally {
      await sql(s2, 'DROP TRIGGER refuse ON currencies');
      await sql(s2, 'DROP FUNCTION refuse()');
    }
    assert.equal((await migrate(stage.config, { tables: ['currencies'] })).ok, true);
    await assertExact(stage.config);
  });

  it('--dry-run changes nothing and says what would be copied', async () => {
    await resetShards(stage.config);
    const r = runCli(['migrate', '--config', cfg, '--dry-run']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /dry run: 12 of 12 units to copy/);
    const rows = await sql(stage.config.shards[0]!.primary, 'SELECT count(*) AS n FROM restaurants');
    assert.equal(Number(rows[0].n), 0);
    const catalog = await sql(stage.config.catalog, `SELECT to_regnamespace('shardctl') IS NULL AS absent`);
    assert.equal(catalog[0].absent, true, 'not even the catalog schema was created');
  });

  it('SIGKILL in the middle of a copy, then a rerun: exact, and finished units are not copied again', async () => {
    await resetShards(stage.config);
    let batches = 0;
    const killed = await watchCli(['migrate', '--config', cfg, '--json', '--concurrency', '1', '--batch-rows', '1500'], (e, child) => {
      if (e.type === 'batch') batches++;
      // kill while the next batch is streaming its tables (its transaction is open)
      if (batches >= 2 && e.type === 'table' && e.table === 'public.orders') child.kill('SIGKILL');
    });
    assert.equal(killed.status, null, 'the process was killed');
    const placed = await sql(stage.config.catalog, 'SELECT unit FROM shardctl.placements');
    assert.ok(placed.length >= 2 && placed.length < 12, `${placed.length} units journaled before the kill`);
    const r = runCli(['migrate', '--config', cfg, '--json']);
    assert.equal(r.status, 0, r.stderr);
    const result = JSON.parse(r.stdout);
    assert.equal(result.units.skipped, placed.length, 'journaled units are skipped');
    assert.equal(result.units.copied, 12 - placed.length);
    await assertExact(stage.config);
    const runs = await sql(stage.config.catalog, `SELECT status FROM shardctl.runs ORDER BY id`);
    assert.deepEqual(runs.map((x) => x.status), ['interrupted', 'ok'], 'the killed run is recorded as interrupted');
  });

  it('Ctrl-C rolls back the batch in flight, journals what finished and exits 130; a rerun completes it', async () => {
    await resetShards(stage.config);
    let batches = 0;
    const r = await watchCli(['migrate', '--config', cfg, '--json', '--concurrency', '1', '--batch-rows', '1500'], (e, child) => {
      if (e.type === 'batch') batches++;
      if (batches === 1 && e.type === 'table' && e.table === 'public.orders') child.kill('SIGINT');
    });
    assert.equal(r.status, 130, r.stderr);
    assert.match(r.stderr, /interrupted: \d+ units were copied and journaled/);
    const placed = await sql(stage.config.catalog, 'SELECT unit, shard FROM shardctl.placements');
    assert.ok(placed.length >= 1 && placed.length < 12);
    // nothing of an unjournaled unit is on any shard: the batch in flight was rolled back
    const onShards = new Set<string>();
    for (const s of stage.config.shards) {
      for (const row of await sql(s.primary, 'SELECT DISTINCT restaurant_id::text AS u FROM orders')) onShards.add(row.u);
    }
    assert.deepEqual([...onShards].sort(), placed.map((p) => p.unit).sort());
    const runs = await sql(stage.config.catalog, `SELECT status FROM shardctl.runs ORDER BY id`);
    assert.deepEqual(runs.map((x) => x.status), ['interrupted']);
    assert.equal(runCli(['migrate', '--config', cfg]).status, 0);
    await assertExact(stage.config);
  });

  it('foreign keys hold on the fast COPY path: a row without its parent fails its batch and nothing of it commits', async () => {
    await resetShards(stage.config);
    const s1 = stage.config.shards[1]!.primary;
    await sql(s1, 'CREATE TABLE gate (id bigint PRIMARY KEY)');
    await sql(s1, 'ALTER TABLE orders ADD CONSTRAINT orders_gate FOREIGN KEY (restaurant_id) REFERENCES gate (id)');
    try {
      for (const fireTriggers of [false, true]) {
        const r = await migrate(stage.config, { fireTriggers });
        assert.equal(migrateExit(r), 1);
        assert.deepEqual([...new Set(r.errors.map((e) => e.shard))], ['s1']);
        const expected = fireTriggers ? /violates foreign key constraint "orders_gate"/ : /shard s1: table public\.orders: \d+ copied row\(s\) break foreign key orders_gate \(no matching row in public\.gate\)/;
        assert.match(r.errors[0]!.error, expected);
        assert.deepEqual(await sql(s1, 'SELECT count(*)::int AS n FROM restaurants'), [{ n: 0 }], 'the failed batch left nothing behind');
      }
    } finally {
      await sql(s1, 'ALTER TABLE orders DROP CONSTRAINT orders_gate');
      await sql(s1, 'DROP TABLE gate');
    }
    const again = await migrate(stage.config);
    assert.equal(again.ok, true);
    await assertExact(stage.config);
  });

  it('a shard that drops the connection mid-batch, and again on the retry: exit 3, the shard named, nothing of the batch kept', async () => {
    await resetShards(stage.config);
    const s1 = stage.config.shards[1]!.primary;
    await sql(s1, `CREATE FUNCTION hang_up() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NULL; END $$`);
    await sql(s1, 'CREATE TRIGGER hang_up BEFORE INSERT ON orders FOR EACH STATEMENT EXECUTE FUNCTION hang_up()');
    await sql(s1, 'ALTER TABLE orders ENABLE ALWAYS TRIGGER hang_up'); // fires under session_replication_role = replica too
    try {
      const r = runCli(['migrate', '--config', cfg, '--json']);
      assert.equal(r.status, 3, r.stderr);
      const doc = JSON.parse(r.stdout);
      assert.equal(doc.exitCode, 3);
      assert.deepEqual([...new Set(doc.errors.map((e: { shard: string }) => e.shard))], ['s1']);
      assert.ok(doc.errors.every((e: { unreachable: boolean }) => e.unreachable), JSON.stringify(doc.errors));
      // which of these the client sees first is a race: the server's message, the closed socket, or
      // (while a COPY is still writing to the dead socket) the reset or broken pipe of that write
      assert.match(doc.errors[0].error, /^shard s1: (terminating connection due to administrator command \[57P01\]|Connection terminated|write (ECONNRESET|EPIPE))/);
      assert.match(r.stderr, /"type":"batch-error".*"retrying":true/);
      assert.deepEqual(await sql(s1, 'SELECT count(*)::int AS n FROM restaurants'), [{ n: 0 }], 'the failed batch left nothing behind');
    } finally {
      await sql(s1, 'DROP TRIGGER hang_up ON orders');
      await sql(s1, 'DROP FUNCTION hang_up()');
    }
    assert.equal((await migrate(stage.config)).ok, true);
    await assertExact(stage.config);
  });

  describe('refuses early, naming the server and table, before writing anything', () => {
    const variant = (edit: (text: string) => string) => {
      const file = `${stage.fleet.dir}/variant.yaml`;
      writeFileSync(file, edit(readFileSync(cfg, 'utf8')));
      return file;
    };
    const s1 = () => stage.config.shards[1]!.primary;

    it('a shard that is unreachable: exit 3', () => {
      const file = variant((t) => t.replace(new URL(s1()).port, '1'));
      const r = runCli(['migrate', '--config', file]);
      assert.equal(r.status, 3);
      assert.match(r.stderr, /shard s1 \(postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:1\/app\): cannot connect/);
      assertNoPassword(r.stderr + r.stdout);
    });

    it('wrong credentials: exit 3 with the reason', () => {
      const pw = decodeURIComponent(new URL(s1()).password);
      const file = variant((t) => t.replace(s1(), s1().replace(`:${encodeURIComponent(pw)}@`, ':wrong-password@')));
      const r = runCli(['migrate', '--config', file]);
      assert.equal(r.status, 3);
      assert.match(r.stderr, /shard s1 .*: cannot connect: password authentication failed/);
      assert.doesNotMatch(r.stderr, /wrong-password/);
      assertNoPassword(r.stderr);
    });

    it('a table missing on a shard', async () => {
      await sql(s1(), 'ALTER TABLE analytics_events RENAME TO analytics_events_old');
      try {
        const r = runCli(['migrate', '--config', cfg]);
        assert.equal(r.status, 3);
        assert.match(r.stderr, /shard s1: table public\.analytics_events does not exist/);
      } finally {
        await sql(s1(), 'ALTER TABLE analytics_events_old RENAME TO analytics_events');
      }
    });

    it('a column missing, and a column of another type, on a shard: all problems listed', async () => {
      await sql(s1(), 'ALTER TABLE products RENAME COLUMN sku TO sku_old');
      await sql(s1(), 'ALTER TABLE themes ALTER COLUMN font TYPE text');
      try {
        const r = runCli(['migrate', '--config', cfg]);
        assert.equal(r.status, 3);
        assert.match(r.stderr, /3 schema problems on the shards/);
        assert.match(r.stderr, /shard s1: table public\.products has no column sku\n/);
        assert.match(r.stderr, /shard s1: table public\.products has an extra column sku_old character varying\(32\) NOT NULL without a default/);
        assert.match(r.stderr, /shard s1: table public\.themes column font is text, expected character varying\(64\)/);
      } finally {
        await sql(s1(), 'ALTER TABLE products RENAME COLUMN sku_old TO sku');
        await sql(s1(), 'ALTER TABLE themes ALTER COLUMN font TYPE varchar(64)');
      }
    });

    it('key values that are NULL on the source: the count is reported', async () => {
      const src = stage.config.source;
      await sql(src, 'ALTER TABLE analytics_events ALTER COLUMN restaurant_id DROP NOT NULL');
      const saved = await sql(src, 'SELECT id, restaurant_id FROM analytics_events ORDER BY id LIMIT 3');
      await sql(src, 'UPDATE analytics_events SET restaurant_id = NULL WHERE id = ANY($1::bigint[])', [saved.map((x) => x.id)]);
      try {
        const r = runCli(['migrate', '--config', cfg]);
        assert.equal(r.status, 3);
        assert.match(r.stderr, /source: table public\.analytics_events: 3 rows have a NULL restaurant_id; they belong to no unit/);
      } finally {
        for (const x of saved) await sql(src, 'UPDATE analytics_events SET restaurant_id = $2 WHERE id = $1', [x.id, x.restaurant_id]);
        await sql(src, 'ALTER TABLE analytics_events ALTER COLUMN restaurant_id SET NOT NULL');
      }
    });

    it('a shard that already holds rows it should not', async () => {
      const router = topologyRouter(stage.config);
      const stray = [...Array(100).keys()].map((i) => 900000 + i).find((id) => router.shardFor(id) !== 's1')!;
      await sql(s1(), `INSERT INTO restaurants (id, name, slug, currency_code, timezone, address, latitude, longitude, opened_on, is_active, tags, public_id, created_at)
                       VALUES ($1, 'stray', 'stray', 'USD', 'UTC', '{}', 0, 0, '2024-01-01', true, '{}', gen_random_uuid(), now())`, [stray]);
      try {
        const r = runCli(['migrate', '--config', cfg]);
        assert.equal(r.status, 3);
        assert.match(r.stderr, new RegExp(`shard s1: table public\\.restaurants already holds rows of 1 unit\\(s\\) that route to other shards \\(${stray}\\)`));
      } finally {
        await sql(s1(), 'DELETE FROM restaurants WHERE id = $1', [stray]);
      }
    });

    it('a second concurrent run is refused and told who holds the lock', async () => {
      const holder = await Catalog.open(stage.config.catalog);
      try {
        const run = await holder.lock('rebalance', {});
        const r = runCli(['migrate', '--config', cfg]);
        assert.equal(r.status, 3);
        assert.match(r.stderr, new RegExp(`another shardctl run holds the catalog lock: rebalance \\(run ${run.id}, pid ${process.pid} on `));
      } finally {
        await holder.close();
      }
    });
  });
});

describe('migrate: location fixture (h3)', () => {
  let stage: Stage;
  before(async () => {
    stage = await stageFleet({ kind: 'location', shards: 3, scale: 0.002 });
  });
  after(() => stage?.stop());

  it('routes lat/lng rows by the resolution-12 parent rule, H3 columns by range, children via their parent', async () => {
    const r = await migrate(stage.config, { batchRows: 300 });
    assert.equal(r.ok, true, JSON.stringify(r.failures));
    assert.ok(r.units.copied > 10);
    await assertExact(stage.config);
    const again = await migrate(stage.config);
    assert.equal(again.units.copied, 0);
  });

  it('computes each lat/lng row\'s cell once per run, every batch reading the snapshot the cells came from', async () => {
    await resetShards(stage.config);
    const src = stage.config.source;
    // Right after the cells are staged (the engine is blocked in this synchronous handler), move one
    // location to another continent and commit: the batches, which start later, must still copy the
    // row the cells were computed from — a row copied with a stale cell would sit on the wrong shard.
    const [moved] = await sql(src, 'SELECT id, latitude, longitude FROM locations ORDER BY id LIMIT 1');
    const update = `UPDATE locations SET latitude = -33.8688, longitude = 151.2093 WHERE id = ${moved.id}`;
    const staged: { table: string; rows: number }[] = [];
    let batches = 0;
    const r = await migrate(stage.config, {
      batchRows: 300,
      onEvent: (e) => {
        if (e.type === 'cells') {
          staged.push({ table: e.table, rows: e.rows });
          if (e.table === 'public.locations') execFileSync(process.execPath, ['-e', updateScript(src, update)]);
        }
        if (e.type === 'batch') batches++;
      },
    });
    assert.equal(r.ok, true, JSON.stringify(r.failures));
    const rows = await sql(src, 'SELECT (SELECT count(*) FROM profiles) AS p, (SELECT count(*) FROM locations) AS l');
    assert.deepEqual(staged, [{ table: 'public.profiles', rows: Number(rows[0].p) }, { table: 'public.locations', rows: Number(rows[0].l) }]);
    assert.ok(batches > 5, `${batches} batches`);
    const router = topologyRouter(stage.config);
    const holders = [];
    for (const s of stage.config.shards) {
      const there = await sql(s.primary, 'SELECT latitude, longitude FROM locations WHERE id = $1', [moved.id]);
      for (const x of there) holders.push({ shard: s.id, lat: x.latitude, lng: x.longitude });
    }
    assert.deepEqual(holders, [{ shard: router.shardForLocation(moved.latitude, moved.longitude), lat: moved.latitude, lng: moved.longitude }]);
    const left = await sql(src, "SELECT count(*) AS n FROM pg_tables WHERE schemaname = 'shardctl' AND tablename LIKE 'migrate_cells%'");
    assert.equal(Number(left[0].n), 0, 'the staging tables are dropped at the end of the run');
    // put the row back: now the fleet must be exact, and a resync (units already on the shards, so
    // the shard side computes its cells to delete them first) must keep it exact
    await sql(src, 'UPDATE locations SET latitude = $1, longitude = $2 WHERE id = $3', [moved.latitude, moved.longitude, moved.id]);
    await assertExact(stage.config);
    const again = await migrate(stage.config, { batchRows: 300, resync: true });
    assert.equal(again.ok, true, JSON.stringify(again.failures));
    assert.equal(again.units.copied, r.units.copied);
    await assertExact(stage.config);
  });

  it('plan --propose-mapping keeps neighbouring cells together and reports imbalance and boundary share for both mappings', () => {
    const r = runCli(['plan', '--config', stage.configPath, '--json', '--propose-mapping', '--shards', '4']);
    assert.equal(r.status, 0, r.stderr);
    const p = JSON.parse(r.stdout);
    const m = p.proposedMapping;
    assert.equal(m.shards.length, 4);
    const mapped = new Map<string, { shard: string; region?: string }>(m.mapping.map((x: { cell: string; shard: string; region?: string }) => [x.cell, x]));
    for (const a of p.assignment) assert.ok(mapped.has(a.unit), `cell ${a.unit} holding data is mapped`);
    assert.equal(m.shards.reduce((n: number, s: { bytes: number }) => n + s.bytes, 0), p.bytes);
    const st = stage.config.strategy;
    assert.ok(st.kind === 'h3');
    for (const c of st.mapping) assert.equal(mapped.get(c.cell)!.region, c.region, `${c.cell} keeps its region name`);
    for (const x of [p.boundaryShare, m.boundaryShare]) assert.ok(x >= 0 && x <= 1);
    const human = runCli(['plan', '--config', stage.configPath, '--propose-mapping']);
    assert.match(human.stdout, /^boundary share \(bytes in a cell bordering another shard's cell\): \d+\.\d%$/m);
    assert.match(human.stdout, /^current +\d\.\d\d +\d+\.\d%$/m);
    assert.match(human.stdout, /^proposed +\d\.\d\d +\d+\.\d%$/m);
    assert.match(human.stdout, /^ {2}- \{ cell: [0-9a-f]{15}, shard: s\d, region: [^,}]+ \}$/m);
  });
});

/** A node -e script running one statement on `url` (to run SQL synchronously, blocking this process). */
function updateScript(url: string, statement: string): string {
  return `const pg = require(${JSON.stringify(pgPath)});
const c = new pg.Client({ connectionString: ${JSON.stringify(url)} });
c.connect().then(() => c.query(${JSON.stringify(statement)})).then(() => c.end(), (e) => { console.error(e); process.exit(1); });`;
}

const pgPath = createRequire(import.meta.url).resolve('pg');

function assertNoPassword(text: string) {
  assert.doesNotMatch(text, /postgres:\/\/[^:\s]+:(?!\*\*\*@)[^@\s]+@/, 'a URL with a password was printed');
}
