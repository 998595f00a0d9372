import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { cellToParent, latLngToCell } from 'h3-js';
import { startFleet, type Fleet } from '../harness/fleet/index.js';
import { loadConfig } from '../src/config/load.js';
import { migrate } from '../src/migrate/index.js';
import { assertExact } from './helpers/exact.js';
import { resetShards, sql } from './helpers/fleet.js';
import { writeSpotsConfig } from './helpers/spots-config.js';

/*
 * Every batch of a lat/lng run reads the source through the run's one snapshot, joined to the cells
 * staged from it (issue 26). Whatever happens to the table after the staging (every row rewritten
 * in place, some moved to other cells, some deleted, new ones inserted, then VACUUM), the shards
 * must hold the rows as that snapshot saw them; and a partitioned lat/lng table (the seam where
 * rows are not one heap) must be copied exactly. The oracle is the test's own list of the rows it
 * wrote before the run.
 */
const cellOf = (lat: number, lng: number) => cellToParent(latLngToCell(lat, lng, 12), 3);

function points(n: number): [number, number][] {
  let x = 7;
  const rnd = () => (x = (x * 48271) % 2147483647) / 2147483647;
  return Array.from({ length: n }, () => [-60 + 120 * rnd(), -180 + 360 * rnd()]);
}

interface Row {
  id: number;
  lat: number;
  lng: number;
  note: string;
  cell: string;
}

async function load(url: string, rows: readonly Row[]): Promise<void> {
  await sql(url, 'INSERT INTO spots (id, lat, lng, note) SELECT * FROM unnest($1::bigint[], $2::float8[], $3::float8[], $4::text[])', [
    rows.map((r) => r.id), rows.map((r) => r.lat), rows.map((r) => r.lng), rows.map((r) => r.note),
  ]);
}

async function shardRows(url: string): Promise<string[]> {
  return (await sql(url, 'SELECT id, lat, lng, note FROM spots ORDER BY id')).map((r) => JSON.stringify([Number(r.id), r.lat, r.lng, r.note]));
}

const expected = (rows: readonly Row[], onShard: (r: Row) => boolean) => rows.filter(onShard).sort((a, b) => a.id - b.id).map((r) => JSON.stringify([r.id, r.lat, r.lng, r.note]));

describe('migrate: lat/lng batches read the run snapshot', () => {
  let fleet: Fleet;
  before(async () => {
    fleet = await startFleet({ shards: 2 });
  });
  after(() => fleet?.stop());

  async function fixture(ddl: readonly string[], n: number): Promise<{ rows: Row[]; cfg: string; shardOf: (cell: string) => string }> {
    for (const s of [fleet.source, ...fleet.shards.map((x) => x.primary)]) {
      await s.query('DROP TABLE IF EXISTS visits, spots CASCADE; DROP SCHEMA IF EXISTS shardctl CASCADE');
      for (const d of ddl) await s.query(d);
      await s.query('CREATE TABLE visits (id bigint PRIMARY KEY, spot_id bigint NOT NULL, n int NOT NULL)');
    }
    const rows = points(n).map(([lat, lng], i) => ({ id: i + 1, lat, lng, note: `v1-${i + 1}`, cell: cellOf(lat, lng) }));
    await load(fleet.source.url(), rows);
    const cells = [...new Set(rows.map((r) => r.cell))].sort();
    return { rows, ...writeSpotsConfig(fleet, cells) };
  }

  it('copies the versions of its snapshot: rows updated in place, moved, deleted and inserted after the staging, then vacuumed', async () => {
    // no index on note: its update is a heap-only (HOT) one, the new version on the page of the old
    const { rows, cfg, shardOf } = await fixture(['CREATE TABLE spots (id bigint PRIMARY KEY, lat float8 NOT NULL, lng float8 NOT NULL, note text)'], 3000);
    const config = loadConfig(cfg);
    const src = config.source;
    let changed: Promise<unknown> | undefined;
    // after the staging, before the first batch: every row rewritten, some moved to the other
    // shard's cells, some deleted, new ones inserted, and VACUUM trying to reclaim the old versions
    const change = async () => {
      await sql(src, "UPDATE spots SET note = 'v2-' || id");
      await sql(src, 'UPDATE spots SET lat = -lat, lng = -lng WHERE id % 5 = 0');
      await sql(src, 'DELETE FROM spots WHERE id % 7 = 0');
      await load(src, points(500).map(([lat, lng], i) => ({ id: 100_000 + i, lat, lng, note: 'late', cell: '' })));
      await sql(src, 'VACUUM spots');
    };
    const throttle = { wait: async () => void (await (changed ??= change())) };
    const r = await migrate(config, { batchRows: 500, throttle });
    assert.equal(r.ok, true, JSON.stringify([r.errors, r.failures.slice(0, 3)]));
    assert.ok(changed, 'the source changed while the run went on');
    for (const s of fleet.shards) {
      assert.deepEqual(await shardRows(s.primary.url()), expected(rows, (x) => shardOf(x.cell) === s.id), `the snapshot's rows on ${s.id}, as they were`);
    }
  });

  it('a partitioned lat/lng table is copied exactly, its partitions\' rows each on the shard of its cell', async () => {
    const { rows, cfg, shardOf } = await fixture([
      'CREATE TABLE spots (id bigint NOT NULL, lat float8 NOT NULL, lng float8 NOT NULL, note text, PRIMARY KEY (id)) PARTITION BY RANGE (id)',
      'CREATE TABLE spots_a PARTITION OF spots FOR VALUES FROM (0) TO (1000)',
      'CREATE TABLE spots_b PARTITION OF spots FOR VALUES FROM (1000) TO (1000000)',
    ], 2000);
    const parts = await sql(fleet.source.url(), "SELECT (SELECT count(*) FROM spots_a)::int AS a, (SELECT count(*) FROM spots_b)::int AS b");
    assert.deepEqual(parts, [{ a: 999, b: 1001 }]);
    const config = loadConfig(cfg);
    await resetShards(config);
    const r = await migrate(config, { batchRows: 500 });
    assert.equal(r.ok, true, JSON.stringify([r.errors, r.failures.slice(0, 3)]));
    for (const s of fleet.shards) assert.deepEqual(await shardRows(s.primary.url()), expected(rows, (x) => shardOf(x.cell) === s.id), `rows on ${s.id}`);
    await assertExact(config);
  });
});
