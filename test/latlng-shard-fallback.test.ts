import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { cellToParent, latLngToCell } from 'h3-js';
import { startFleet, type Fleet } from '../harness/fleet/index.js';
import { loadConfig } from '../src/config/load.js';
import { migrate } from '../src/migrate/index.js';
import { sql } from './helpers/fleet.js';
import { writeSpotsConfig } from './helpers/spots-config.js';

/*
 * A fresh shard loads a lat/lng batch's staged cells only when a query there joins them (issue 26):
 * the per-unit sums, run only when the shard table's whole-table total differs from the source's.
 * Here it differs: a stray row of another cell already on the shard (every unit still proven), and
 * a shard trigger altering one row (that row's unit, and only it, fails and leaves the shard).
 * Skipping the load would fail both: the grouped query joins a cell table the session never filled.
 */
const DDL = [
  'CREATE TABLE spots (id bigint PRIMARY KEY, lat float8 NOT NULL, lng float8 NOT NULL, note text)',
  'CREATE TABLE visits (id bigint PRIMARY KEY, spot_id bigint NOT NULL REFERENCES spots (id), n int NOT NULL)',
];
/** The test's own oracle: the parent at 3 of the resolution-12 cell, as the seed routes a point. */
const cellOf = (lat: number, lng: number) => cellToParent(latLngToCell(lat, lng, 12), 3);

describe('migrate: a fresh shard whose lat/lng table is not the batch rows alone', () => {
  let fleet: Fleet;
  let cfg: string;
  const rows: { id: number; cell: string }[] = [];
  let shardOf: (cell: string) => string;
  before(async () => {
    fleet = await startFleet({ shards: 2 });
    for (const s of [fleet.source, ...fleet.shards.map((x) => x.primary)]) for (const d of DDL) await s.query(d);
    let x = 7;
    const rnd = () => (x = (x * 48271) % 2147483647) / 2147483647;
    const pts: [number, number][] = [];
    for (let i = 0; i < 300; i++) pts.push([-60 + 120 * rnd(), -180 + 360 * rnd()]);
    let id = 0;
    for (const [lat, lng] of pts) for (let k = 0; k < 3; k++) rows.push({ id: ++id, cell: cellOf(lat, lng) });
    await fleet.source.query(
      `INSERT INTO spots SELECT id, lat, lng, 'n' || id FROM unnest($1::bigint[], $2::float8[], $3::float8[]) AS p(id, lat, lng)`,
      [rows.map((r) => r.id), pts.flatMap((p) => [p[0], p[0], p[0]]), pts.flatMap((p) => [p[1], p[1], p[1]])],
    );
    await fleet.source.query('INSERT INTO visits SELECT id, id, id % 5 FROM spots');
    const cells = [...new Set(rows.map((r) => r.cell))].sort();
    ({ cfg, shardOf } = writeSpotsConfig(fleet, cells));
  });
  after(() => fleet?.stop());

  async function reset(): Promise<void> {
    for (const s of fleet.shards) await s.primary.query('TRUNCATE visits, spots');
    await sql(loadConfig(cfg).catalog, 'DROP SCHEMA IF EXISTS shardctl CASCADE');
  }

  /** The shard's ids of spots and visits against the source rows of its cells (minus `without`). */
  async function assertShards(without: string[] = [], extra: Map<string, string[]> = new Map()): Promise<void> {
    for (const s of fleet.shards) {
      const want = rows.filter((r) => shardOf(r.cell) === s.id && !without.includes(r.cell)).map((r) => String(r.id));
      const spots = (await sql(s.primary.url(), 'SELECT id::text AS id FROM spots')).map((r) => r.id as string);
      assert.deepEqual(spots.sort(), [...want, ...(extra.get(s.id) ?? [])].sort(), `spots on ${s.id}`);
      const visits = (await sql(s.primary.url(), 'SELECT spot_id::text AS id FROM visits')).map((r) => r.id as string);
      assert.deepEqual(visits.sort(), [...want].sort(), `visits on ${s.id}`);
    }
  }

  // triggers off: the set-based foreign-key check of visits joins the cells first; on: the sums alone
  for (const fireTriggers of [false, true]) it(`a stray row of another cell on the shard${fireTriggers ? ' (--fire-triggers)' : ''}: the per-unit sums run on the loaded cells, every unit is proven`, async () => {
    await reset();
    const s0 = fleet.shards[0]!;
    const stray: [number, number] = [75.5, 20.25]; // north of every source point: a cell no mapping names (default shard)
    assert.ok(!rows.some((r) => r.cell === cellOf(...stray)));
    await s0.primary.query('INSERT INTO spots VALUES (1000000, $1, $2, $3)', [...stray, 'stray']);
    let batches = 0;
    const r = await migrate(loadConfig(cfg), { batchRows: 300, fireTriggers, onEvent: (e) => void (e.type === 'batch' && batches++) });
    assert.equal(r.errors.length, 0, JSON.stringify(r.errors));
    assert.deepEqual(r.failures, []);
    assert.ok(r.ok);
    assert.ok(batches >= 4, `${batches} batches`);
    await assertShards([], new Map([[s0.id, ['1000000']]]));
  });

  it('a shard trigger altering one row (--fire-triggers): its unit alone fails, named, and leaves the shard', async () => {
    await reset();
    const victim = rows[rows.length - 2]!;
    const s = fleet.shards.find((x) => x.id === shardOf(victim.cell))!;
    await s.primary.query(`CREATE FUNCTION tamper() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.spot_id = ${victim.id} THEN NEW.n := NEW.n + 1; END IF; RETURN NEW; END $$`);
    await s.primary.query('CREATE TRIGGER tamper BEFORE INSERT ON visits FOR EACH ROW EXECUTE FUNCTION tamper()');
    try {
      const r = await migrate(loadConfig(cfg), { batchRows: 300, fireTriggers: true });
      assert.equal(r.errors.length, 0, JSON.stringify(r.errors));
      assert.deepEqual(r.failures.map((f) => f.unit), [victim.cell], JSON.stringify(r.failures));
      assert.match(r.failures[0]!.reason, /^table public\.visits: source 3 rows, shard 3 rows, checksums differ/);
      await assertShards([victim.cell]);
    } finally {
      await s.primary.query('DROP TRIGGER tamper ON visits; DROP FUNCTION tamper()');
    }
  });
});
