import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startFleet, type Fleet } from '../harness/fleet/index.js';
import { loadConfig } from '../src/config/load.js';
import { migrate } from '../src/migrate/index.js';
import { topologyRouter } from '../src/routing/router.js';
import { runCli } from './helpers/cli.js';
import { sql } from './helpers/fleet.js';

/*
 * A batch's per-unit proof (unit-copy/batch.ts, shard-sums.ts): the shard is read back by its own
 * query before COMMIT; on a freshly loaded shard table one total over the whole table stands for
 * every unit, and any other total falls back to the per-unit sums. Whatever the path, a unit whose
 * rows the shard changed fails alone, and every other unit is placed with its exact rows.
 *
 * The shards alter rows as they arrive (BEFORE/AFTER INSERT triggers, run with --fire-triggers) or
 * convert them (a column of a different, compatible type): tenant 1 a NULL turned into '' (accts),
 * tenant 2 a via table's row changed (lines), tenant 3 two rows that trade a value (log: the
 * columns' multisets unchanged), tenant 4 a row turned into a duplicate of another (log: the count
 * unchanged), tenant 6 a row doubled (log, no primary key), tenant 5 a numeric rounded by the
 * shard's domain of the same name (rates: numeric there, numeric(10,1) here; silent, as DateStyle's is). The oracle is the
 * test's own SQL: each tenant's rows on the source and on every shard, as text.
 */

const TENANTS = Array.from({ length: 12 }, (_, i) => i + 1);
const BAD: Record<string, string> = { 1: 'public.accts', 2: 'public.lines', 3: 'public.log', 4: 'public.log', 5: 'public.rates', 6: 'public.log' };

// `body` makes the batch's rows most of each shard table (the whole-table total is tried first)
const SCHEMA = (shard: boolean) => [
  'CREATE TABLE accts (id int PRIMARY KEY, tenant int NOT NULL, note text, pad char(6), body text NOT NULL)',
  'CREATE TABLE lines (id int PRIMARY KEY, acct_id int NOT NULL REFERENCES accts (id), amount int NOT NULL, memo text, body text NOT NULL)',
  'CREATE TABLE log (tenant int NOT NULL, v int NOT NULL, w int NOT NULL, at timestamptz NOT NULL, body text NOT NULL)',
  // the same type by name (no drift for the preflight), which the shards round to one decimal
  `CREATE DOMAIN rate AS ${shard ? 'numeric(10,1)' : 'numeric'}`,
  'CREATE TABLE rates (id int PRIMARY KEY, tenant int NOT NULL, r rate, body text NOT NULL)',
];

const TRIGGERS = [
  `CREATE FUNCTION tamper_accts() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN IF NEW.tenant = 1 AND NEW.note IS NULL THEN NEW.note := ''; END IF; RETURN NEW; END $$`,
  'CREATE TRIGGER tamper BEFORE INSERT ON accts FOR EACH ROW EXECUTE FUNCTION tamper_accts()',
  // acct 9 is tenant 2's first account
  `CREATE FUNCTION tamper_lines() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN IF NEW.acct_id = 9 AND NEW.memo IS NOT NULL THEN NEW.memo := NEW.memo || 'x'; END IF; RETURN NEW; END $$`,
  'CREATE TRIGGER tamper BEFORE INSERT ON lines FOR EACH ROW EXECUTE FUNCTION tamper_lines()',
  `CREATE FUNCTION tamper_log() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
       IF NEW.tenant = 3 THEN NEW.w := CASE NEW.w WHEN 10 THEN 20 WHEN 20 THEN 10 ELSE NEW.w END; END IF;
       IF NEW.tenant = 4 AND NEW.v = 1 THEN NEW.v := 3; END IF;
       RETURN NEW;
     END $$`,
  'CREATE TRIGGER tamper BEFORE INSERT ON log FOR EACH ROW EXECUTE FUNCTION tamper_log()',
  `CREATE FUNCTION double_log() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN IF NEW.tenant = 6 AND NEW.v = 1 AND pg_trigger_depth() = 1 THEN INSERT INTO log VALUES (NEW.*); END IF; RETURN NULL; END $$`,
  'CREATE TRIGGER double AFTER INSERT ON log FOR EACH ROW EXECUTE FUNCTION double_log()',
];

// every tenant: 8 accounts (odd ids without a note), 2 lines each (every third without a memo),
// 34 log rows (one pair identical), 8 rates (tenant 5's second one has a digit the shard rounds)
const BODY = (x: string) => `repeat(md5((${x})::text), 6)`;
const DATA = [
  `INSERT INTO accts SELECT (t - 1) * 8 + a, t, CASE WHEN a % 2 = 0 THEN 'n' || t || a END, 'p' || a, ${BODY('t * 100 + a')}
     FROM generate_series(1, 12) t, generate_series(1, 8) a`,
  `INSERT INTO lines SELECT (id - 1) * 2 + l, id, id * 10 + l, CASE WHEN (id + l) % 3 <> 0 THEN 'm' || id || l END, ${BODY('id * 10 + l')}
     FROM accts, generate_series(1, 2) l`,
  `INSERT INTO log SELECT t, v, w, timestamptz '2024-03-01 12:00:00+00' + t * interval '1 day', ${BODY('t * 1000 + v')}
     FROM generate_series(1, 12) t, (VALUES (1, 10), (2, 20), (2, 20), (3, 10) UNION ALL SELECT v, 100 + v FROM generate_series(10, 39) v) x(v, w)`,
  `INSERT INTO rates SELECT (t - 1) * 8 + k, t, CASE WHEN t = 5 AND k = 2 THEN 5.25 ELSE round(t + k / 10.0, 1) END, ${BODY('t * 10 + k')}
     FROM generate_series(1, 12) t, generate_series(1, 8) k`,
];

// each tenant's rows of each table, as text, sorted: the rows a unit consists of
const TENANT_ROWS = `
  SELECT 'accts' AS t, a.tenant, a::text AS row FROM accts a
  UNION ALL SELECT 'lines', a.tenant, l::text FROM lines l JOIN accts a ON a.id = l.acct_id
  UNION ALL SELECT 'log', g.tenant, g::text FROM log g
  UNION ALL SELECT 'rates', r.tenant, r::text FROM rates r
  ORDER BY 1, 2, 3`;

describe('migrate: the per-unit proof of a batch, read back from the shard', () => {
  let fleet: Fleet;
  let cfg: string;
  before(async () => {
    fleet = await startFleet({ shards: 2 });
    for (const s of SCHEMA(false)) await fleet.source.query(s);
    for (const d of DATA) await fleet.source.query(d);
    for (const shard of fleet.shards) for (const s of [...SCHEMA(true), ...TRIGGERS]) await shard.primary.query(s);
    cfg = join(fleet.dir, 'proof.yaml');
    const doc = {
      source: fleet.source.url(),
      strategy: { kind: 'jump', key: 'tenant' },
      shards: fleet.shards.map((s) => ({ id: s.id, primary: s.primary.url() })),
      tables: [{ name: 'accts' }, { name: 'lines', via: 'acct_id -> accts.id' }, { name: 'log' }, { name: 'rates' }],
    };
    writeFileSync(cfg, JSON.stringify(doc), { mode: 0o600 });
  });
  after(() => fleet?.stop());

  /** Rows per tenant as `table|row` lines on a server, by tenant. */
  async function rowsOf(url: string): Promise<Map<number, string[]>> {
    const out = new Map<number, string[]>();
    for (const r of await sql(url, TENANT_ROWS)) {
      (out.get(r.tenant) ?? out.set(r.tenant, []).get(r.tenant)!).push(`${r.t}|${r.row}`);
    }
    return out;
  }

  /** The test's own oracle: `placed` tenants exactly as on the source on the shard they route to and nowhere else; `absent` ones nowhere. */
  async function assertTenants(placed: readonly number[], absent: readonly number[]): Promise<void> {
    const config = loadConfig(cfg);
    const router = topologyRouter(config);
    const source = await rowsOf(config.source);
    const shards = new Map(await Promise.all(config.shards.map(async (s) => [s.id, await rowsOf(s.primary)] as const)));
    const catalog = new Map((await sql(config.catalog, 'SELECT unit, shard FROM shardctl.placements')).map((p) => [p.unit as string, p.shard as string]));
    for (const t of placed) {
      const home = router.shardFor(String(t));
      assert.deepEqual(shards.get(home)!.get(t) ?? [], source.get(t), `tenant ${t}: its rows on ${home} are the source's`);
      for (const [id, rows] of shards) if (id !== home) assert.equal(rows.get(t), undefined, `tenant ${t}: no rows on ${id}`);
      assert.equal(catalog.get(String(t)), home, `tenant ${t} placed on ${home}`);
    }
    for (const t of absent) {
      for (const [id, rows] of shards) assert.equal(rows.get(t), undefined, `tenant ${t}: rolled back, no rows on ${id}`);
      assert.equal(catalog.get(String(t)), undefined, `tenant ${t} not placed`);
    }
  }

  async function resetShards(): Promise<void> {
    for (const s of fleet.shards) await s.primary.query('TRUNCATE accts, lines, log, rates');
    await sql(loadConfig(cfg).catalog, 'DROP SCHEMA IF EXISTS shardctl CASCADE');
  }

  const good = TENANTS.filter((t) => !BAD[t]);
  const bad = TENANTS.filter((t) => BAD[t]);

  for (const copyFormat of ['auto', 'text'] as const) {
    it(`${copyFormat === 'auto' ? 'binary' : 'text'} COPY: each altered unit fails alone, naming its table; every other unit is exact`, async () => {
      await resetShards();
      const r = await migrate(loadConfig(cfg), { fireTriggers: true, copyFormat });
      assert.equal(r.errors.length, 0, JSON.stringify(r.errors));
      assert.deepEqual(r.failures.map((f) => Number(f.unit)).sort((a, b) => a - b), bad, JSON.stringify(r.failures));
      for (const f of r.failures) assert.match(f.reason, new RegExp(`^table ${BAD[f.unit]!.replace('.', '\\.')}: `), `tenant ${f.unit}: ${f.reason}`);
      assert.equal(r.units.copied, good.length);
      if (copyFormat === 'auto') assert.ok(r.shards.every((s) => s.rows > 0));
      await assertTenants(good, bad);
    });
  }

  it('a stray row on a shard makes the whole-table total differ: the per-unit sums decide, and no unit fails for it (triggers off)', async () => {
    await resetShards();
    // a row of no source tenant, on the shard tenant 7 goes to: its log table is not the batch's rows alone
    const home = topologyRouter(loadConfig(cfg)).shardFor('7');
    const shard = fleet.shards.find((s) => s.id === home)!;
    await shard.primary.query(`INSERT INTO log VALUES (99, 1, 10, '2024-01-01', 'stray')`);
    try {
      const r = await migrate(loadConfig(cfg));
      assert.equal(r.errors.length, 0, JSON.stringify(r.errors));
      assert.deepEqual(r.failures.map((f) => f.unit), ['5'], 'only the rounded unit');
      await assertTenants(TENANTS.filter((t) => t !== 5), [5]);
      const [n] = await sql(shard.primary.url(), 'SELECT count(*)::int AS n FROM log WHERE tenant = 99');
      assert.equal(n.n, 1, 'the stray row is left alone');
    } finally {
      await shard.primary.query('DELETE FROM log WHERE tenant = 99');
    }
  });

  it('on shards already holding units (the per-unit path): the altered units copy once the shard stops altering them; the rounded one still fails, exit 1', async () => {
    await resetShards();
    const first = await migrate(loadConfig(cfg), { fireTriggers: true });
    assert.deepEqual(first.failures.map((f) => Number(f.unit)).sort((a, b) => a - b), bad);
    // without --fire-triggers the shards' triggers stay off during the COPY: only the type conversion remains
    const r = runCli(['migrate', '--config', cfg, '--json']);
    assert.equal(r.status, 1, r.stderr);
    const result = JSON.parse(r.stdout);
    assert.deepEqual(result.failures.map((f: { unit: string }) => f.unit), ['5']);
    assert.match(result.failures[0].reason, /^table public\.rates: source 8 rows, shard 8 rows, checksums differ/);
    await assertTenants(TENANTS.filter((t) => t !== 5), [5]);
  });
});
