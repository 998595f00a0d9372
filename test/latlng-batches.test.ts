import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { cellToBoundary, cellToChildren, cellToParent, getRes0Cells, latLngToCell } from 'h3-js';
import { startFleet, type Fleet } from '../harness/fleet/index.js';
import { loadConfig } from '../src/config/load.js';
import { migrate } from '../src/migrate/index.js';
import { assertExact } from './helpers/exact.js';
import { resetShards, sql } from './helpers/fleet.js';
import { writeSpotsConfig } from './helpers/spots-config.js';

/*
 * lat/lng tables at the cost of their cells (issue 26): every batch's sessions (the copy, the
 * source sums, a fresh shard) fetch the batch's staged (pk, cell) themselves, the cells computed
 * once per point. The rows must still land exactly where H3 puts them, on cell vertices, the poles,
 * the antimeridian and repeated points; and the shard side of a fresh batch must never delete a row
 * of another unit that shares a primary key.
 */
const DDL = [
  'CREATE TABLE spots (id bigint PRIMARY KEY, lat float8 NOT NULL, lng float8 NOT NULL, note text)',
  'CREATE TABLE visits (id bigint PRIMARY KEY, spot_id bigint NOT NULL REFERENCES spots (id), n int NOT NULL)',
];
/** The test's own oracle: the parent at 3 of the resolution-12 cell, as the seed routes a point. */
const cellOf = (lat: number, lng: number) => cellToParent(latLngToCell(lat, lng, 12), 3);

function points(): [number, number][] {
  const pts: [number, number][] = [[90, 0], [-90, 0], [90, 180], [-90, -180], [0, 180], [0, -180], [12.5, 180], [-33.3, -180], [0, 0], [-0, -0]];
  for (const base of getRes0Cells().filter((_, i) => i % 11 === 0)) for (const c of cellToChildren(base, 3).slice(0, 12)) for (const v of cellToBoundary(c)) pts.push(v);
  let x = 11;
  const rnd = () => (x = (x * 48271) % 2147483647) / 2147483647;
  for (let i = 0; i < 600; i++) pts.push([-90 + 180 * rnd(), -180 + 360 * rnd()]);
  return pts;
}

describe('migrate: lat/lng batches fetch their staged cells', () => {
  let fleet: Fleet;
  let cfg: string;
  const rows: { id: number; lat: number; lng: number; cell: string }[] = [];
  let shardOf: (cell: string) => string;
  before(async () => {
    fleet = await startFleet({ shards: 2 });
    for (const s of [fleet.source, ...fleet.shards.map((x) => x.primary)]) for (const d of DDL) await s.query(d);
    // each point 1 to 3 times (repeated points: the memo's hits), ids interleaving the cells
    let id = 0;
    points().forEach(([lat, lng], i) => {
      for (let k = 0; k <= i % 3; k++) rows.push({ id: ++id, lat, lng, cell: cellOf(lat, lng) });
    });
    await fleet.source.query('INSERT INTO spots SELECT * FROM unnest($1::bigint[], $2::float8[], $3::float8[]) AS p(id, lat, lng), LATERAL (SELECT \'s\' || id) n', [
      rows.map((r) => r.id), rows.map((r) => r.lat), rows.map((r) => r.lng),
    ]);
    await fleet.source.query('INSERT INTO visits SELECT id, id, id % 7 FROM spots WHERE id % 2 = 0');
    const cells = [...new Set(rows.map((r) => r.cell))].sort();
    assert.ok(cells.length > 300, `${cells.length} cells`);
    ({ cfg, shardOf } = writeSpotsConfig(fleet, cells));
  });
  after(() => fleet?.stop());

  it('every row on the shard of its H3 cell, in several batches per shard, each unit proven', async () => {
    const config = loadConfig(cfg);
    let batches = 0;
    const r = await migrate(config, { batchRows: 400, onEvent: (e) => void (e.type === 'batch' && batches++) });
    assert.equal(r.ok, true, JSON.stringify([r.errors, r.failures]));
    assert.ok(batches >= 4, `${batches} batches`);
    for (const s of fleet.shards) {
      const want = rows.filter((x) => shardOf(x.cell) === s.id).map((x) => String(x.id)).sort();
      const got = (await sql(s.primary.url(), 'SELECT id::text AS id FROM spots ORDER BY 1')).map((x) => x.id as string).sort();
      assert.deepEqual(got, want, `spots on ${s.id}`);
      const visits = (await sql(s.primary.url(), 'SELECT spot_id::text AS id FROM visits')).map((x) => x.id as string).sort();
      assert.deepEqual(visits, want.filter((x) => Number(x) % 2 === 0).sort(), `visits on ${s.id} follow their spot`);
    }
    const placed = await sql(config.catalog, 'SELECT count(*)::int AS n FROM shardctl.placements');
    assert.equal(placed[0].n, new Set(rows.map((x) => x.cell)).size);
    await assertExact(config);
  });

  it('a fresh cell whose row shares its key with a row of another cell on the shard: the batch fails, that row stays', async () => {
    const config = loadConfig(cfg);
    const s0 = fleet.shards[0]!;
    // a row of a cell on s0 with other rows (the cell stays a unit), moved on the source to a cell
    // no row is in yet and no mapping names (so routed to s0, the default shard): a fresh unit there
    const counts = new Map<string, number>();
    for (const x of rows) counts.set(x.cell, (counts.get(x.cell) ?? 0) + 1);
    const moved = rows.find((x) => shardOf(x.cell) === s0.id && counts.get(x.cell)! >= 2 && x.id % 2 === 1)!;
    const to: [number, number] = [-45.5, -130.25];
    assert.ok(!counts.has(cellOf(...to)));
    const before = await sql(s0.primary.url(), 'SELECT count(*)::int AS n FROM spots');
    await sql(config.source, 'UPDATE spots SET lat = $1, lng = $2 WHERE id = $3', [...to, moved.id]);
    try {
      const r = await migrate(config, {});
      assert.equal(r.ok, false, 'the copy of the moved row meets the key of the old one');
      const there = await sql(s0.primary.url(), 'SELECT lat, lng FROM spots WHERE id = $1', [moved.id]);
      assert.deepEqual(there, [{ lat: moved.lat, lng: moved.lng }], 'the row of the placed cell is still there, unchanged');
      assert.deepEqual(await sql(s0.primary.url(), 'SELECT count(*)::int AS n FROM spots'), before);
    } finally {
      await sql(config.source, 'UPDATE spots SET lat = $1, lng = $2 WHERE id = $3', [moved.lat, moved.lng, moved.id]);
    }
  });

  it('a batch copies exactly the rows the run staged for its cells, or nothing (a staging it cannot see stops it)', async () => {
    const config = loadConfig(cfg);
    await resetShards(config);
    // Between the staging and the first batch the staging is emptied by TRUNCATE, which (unlike a
    // DELETE) older snapshots see too: the run's snapshot then sees no cell at all, as if the
    // staging were invisible to it. The source sums would agree with the empty copy (they join the
    // same staging): only the staged counts tell.
    let tampering: Promise<unknown> | undefined;
    const throttle = { wait: async () => void (await (tampering ??= sql(config.source, 'TRUNCATE shardctl.migrate_cells_public_spots'))) };
    let batches = 0;
    const r = await migrate(config, { throttle, onEvent: (e) => void (e.type === 'batch' && batches++) });
    assert.equal(r.ok, false);
    assert.equal(batches, 0, 'no batch finished');
    assert.ok(r.errors.length >= 2, JSON.stringify([r.errors, r.failures.slice(0, 3)]));
    for (const e of r.errors) assert.match(e.error, /table public\.spots: the batch copied 0 rows of its \d+ cells, the run staged [1-9]\d* from the same snapshot; nothing of the batch was kept/);
    assert.deepEqual(await sql(config.catalog, 'SELECT count(*)::int AS n FROM shardctl.placements'), [{ n: 0 }]);
    for (const s of fleet.shards) assert.deepEqual(await sql(s.primary.url(), 'SELECT count(*)::int AS n FROM visits'), [{ n: 0 }], `nothing on ${s.id}`);
    // the next run stages afresh and copies the rest
    const again = await migrate(config, {});
    assert.equal(again.ok, true, JSON.stringify(again.errors));
    await assertExact(config);
  });

  it('a shard holding a lat/lng row of a cell routed elsewhere is refused before anything is written', async () => {
    const config = loadConfig(cfg);
    const [s0, s1] = fleet.shards;
    const stray = rows.find((x) => shardOf(x.cell) === s1!.id)!;
    await sql(s0!.primary.url(), 'INSERT INTO spots (id, lat, lng, note) VALUES ($1, $2, $3, $4)', [10_000_000, stray.lat, stray.lng, 'stray']);
    try {
      const before = await sql(config.catalog, 'SELECT count(*)::int AS n FROM shardctl.placements');
      await assert.rejects(migrate(config, {}), (e: Error) => {
        assert.match(e.message + JSON.stringify((e as { details?: unknown }).details ?? ''), new RegExp(`shard ${s0!.id}: table public\\.spots already holds rows of 1 unit\\(s\\) that route to other shards \\(${stray.cell}\\)`));
        return true;
      });
      assert.deepEqual(await sql(config.catalog, 'SELECT count(*)::int AS n FROM shardctl.placements'), before, 'nothing journaled');
    } finally {
      await sql(s0!.primary.url(), 'DELETE FROM spots WHERE id = 10000000');
    }
    const r = await migrate(config, {});
    assert.equal(r.ok, true, JSON.stringify(r.errors));
    await assertExact(config);
  });
});
