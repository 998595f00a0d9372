import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { cellToLatLng, cellToParent, gridDisk, latLngToCell } from 'h3-js';
import { startFleet, type Fleet } from '../harness/fleet/index.js';
import { parseConfig } from '../src/config/load.js';
import { migrate } from '../src/migrate/index.js';
import { rebalance } from '../src/rebalance/index.js';
import { withClient } from '../src/db/connect.js';
import { shardEndpoint } from '../src/db/endpoints.js';
import { fenceUnits, unfenceUnits } from '../src/fence/unit-fence.js';
import type { Config } from '../src/config/types.js';
import { sql } from './helpers/fleet.js';

/*
 * The set-based guard of a lat/lng table (fence/set-guard.ts) on real servers, h3: after a mapping
 * move (a `moved` fence on the old shard, routes checked), multi-row INSERTs and UPDATEs on s0 of
 * points whose cells the test computes with h3-js (the oracle of placement): points of s0's cells
 * land; one point of a cell mapped to s1 refuses its statement (40001 naming the cell and its home);
 * one of the moved cell (55000); a fenced cell's points refused by an UPDATE that keeps them.
 */
describe('the set-based write guard of a lat/lng table (h3)', () => {
  let fleet: Fleet;
  let config: Config;
  let s0: string;
  const cells = gridDisk(latLngToCell(45.76, 4.84, 3), 2).sort();
  /** points (res-9 cells' centres around each cell's centre) whose res-3 parent of their res-12 cell is that cell */
  const pointsOf = (cell: string) =>
    gridDisk(latLngToCell(...cellToLatLng(cell), 9), 3)
      .map((p) => cellToLatLng(p))
      .filter(([lat, lng]) => cellToParent(latLngToCell(lat, lng, 12), 3) === cell);
  let movedCell: string;
  let mine: string[];
  let theirs: string;

  before(async () => {
    fleet = await startFleet({ shards: 2 });
    for (const s of [fleet.source, ...fleet.shards.map((x) => x.primary)]) {
      await s.query('CREATE TABLE places (id bigint PRIMARY KEY, lat float8 NOT NULL, lng float8 NOT NULL, v int NOT NULL)');
    }
    const [a, b] = fleet.shards.map((s) => s.id);
    const mapping = cells.map((cell, i) => ({ cell, shard: i % 2 ? b! : a! }));
    const rows = cells.flatMap((c) => pointsOf(c)).map(([lat, lng], i) => `(${i}, ${lat}, ${lng}, 0)`);
    await fleet.source.query(`INSERT INTO places VALUES ${rows.join(',')}`);
    const doc = {
      source: fleet.source.url(),
      strategy: { kind: 'h3', defaultShard: b, mapping },
      shards: fleet.shards.map((s) => ({ id: s.id, primary: s.primary.url() })),
      tables: [{ name: 'places', lat: 'lat', lng: 'lng' }],
    };
    config = parseConfig(JSON.stringify(doc), 'guard-set-h3');
    await migrate(config, {});
    movedCell = cells[0]!;
    doc.strategy.mapping = mapping.map((m) => (m.cell === movedCell ? { ...m, shard: b! } : m));
    config = parseConfig(JSON.stringify(doc), 'guard-set-h3');
    await rebalance(config, { apply: true, offline: true });
    s0 = fleet.shards[0]!.primary.url();
    mine = doc.strategy.mapping.filter((m) => m.shard === a).map((m) => m.cell);
    theirs = doc.strategy.mapping.find((m) => m.shard === b && m.cell !== movedCell)!.cell;
    const left = await sql(s0, 'SELECT lat, lng FROM places');
    assert.ok(left.every((r) => mine.includes(cellToParent(latLngToCell(r.lat, r.lng, 12), 3))), 's0 holds only its own cells');
  });
  after(() => fleet?.stop());

  async function app(text: string, params: unknown[] = []): Promise<{ code?: string; message: string } | undefined> {
    const c = new pg.Client({ connectionString: s0 });
    c.on('error', () => undefined);
    await c.connect();
    try {
      await c.query('BEGIN');
      await c.query(text, params);
      await c.query('COMMIT');
      return undefined;
    } catch (e) {
      return { code: (e as { code?: string }).code, message: (e as Error).message };
    } finally {
      await c.end();
    }
  }
  const insert = (id: number, pts: number[][]) =>
    app('INSERT INTO places (id, lat, lng, v) SELECT $1::bigint + o - 1, la, ln, 0 FROM unnest($2::float8[], $3::float8[]) WITH ORDINALITY AS x(la, ln, o)', [id, pts.map((p) => p[0]), pts.map((p) => p[1])]);
  const count = async (text: string) => Number((await sql(s0, text))[0].n);

  it("a multi-row INSERT of s0's points lands; one point of a cell homed on s1 refuses it (40001), one of the moved cell (55000)", async () => {
    const ours = mine.flatMap((c) => pointsOf(c));
    assert.ok(ours.length > 50);
    assert.equal(await insert(100_000, ours), undefined);
    assert.equal(await count('SELECT count(*) AS n FROM places WHERE id >= 100000'), ours.length);
    const bad = await insert(200_000, [...ours, pointsOf(theirs)[0]!]);
    assert.equal(bad?.code, '40001', bad?.message ?? 'committed');
    assert.match(bad!.message, new RegExp(`unit ${theirs} belongs on shard ${fleet.shards[1]!.id}`));
    const moved = await insert(200_000, [...ours, pointsOf(movedCell)[0]!]);
    assert.equal(moved?.code, '55000', moved?.message ?? 'committed');
    assert.match(moved!.message, new RegExp(`unit ${movedCell} has moved`));
    assert.equal(await count('SELECT count(*) AS n FROM places WHERE id >= 200000'), 0);
  });

  it('an UPDATE keeping its points passes; one moving a point into another shard\'s cell or the moved cell is refused', async () => {
    assert.equal(await app('UPDATE places SET v = v + 1'), undefined);
    assert.equal(await count('SELECT count(*) AS n FROM places WHERE v = 0'), 0);
    const [lat, lng] = pointsOf(theirs)[1]!;
    const r = await app('UPDATE places SET lat = $1, lng = $2 WHERE id = (SELECT min(id) FROM places)', [lat, lng]);
    assert.equal(r?.code, '40001', r?.message ?? 'committed');
    const [mlat, mlng] = pointsOf(movedCell)[1]!;
    const m = await app('UPDATE places SET lat = $1, lng = $2 WHERE id IN (SELECT id FROM places ORDER BY id LIMIT 3)', [mlat, mlng]);
    assert.equal(m?.code, '55000', m?.message ?? 'committed');
    assert.equal(await count(`SELECT count(*) AS n FROM places WHERE lat IN (${lat}, ${mlat})`), 0);
  });

  it("a fenced cell's points: an UPDATE keeping them and a multi-row INSERT are refused; a neighbour cell's points write", async () => {
    const fenced = mine[0]!;
    const other = mine.find((c) => c !== fenced)!;
    const e = shardEndpoint(config, fleet.shards[0]!.id);
    await withClient(e, (x) => fenceUnits(x, e, config, [{ unit: fenced, from: 's0', to: 's1', role: 'source' }]));
    try {
      const refused = (x: { code?: string; message: string } | undefined) => {
        assert.equal(x?.code, '55000', x?.message ?? 'committed');
        assert.match(x!.message, new RegExp(`unit ${fenced} is being moved`));
      };
      refused(await app('UPDATE places SET v = v + 1'));
      refused(await insert(300_000, [...pointsOf(other), pointsOf(fenced)[0]!]));
      refused(await app('DELETE FROM places WHERE id IN (SELECT id FROM places ORDER BY id DESC LIMIT 400)'));
      const before = await count('SELECT sum(v) AS n FROM places');
      const ids = (await sql(s0, 'SELECT id, lat, lng FROM places')).filter((r) => cellToParent(latLngToCell(r.lat, r.lng, 12), 3) === other).map((r) => r.id);
      assert.equal(await app('UPDATE places SET v = v + 1 WHERE id = ANY($1::bigint[])', [ids]), undefined, 'a neighbour cell writes');
      assert.equal(await insert(300_000, pointsOf(other)), undefined);
      assert.equal(await count('SELECT sum(v) AS n FROM places'), before + ids.length);
    } finally {
      await withClient(e, (x) => unfenceUnits(x, [fenced]));
    }
  });
});
