import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { cellToChildren, cellToParent, latLngToCell, getPentagons } from 'h3-js';
import { createRouter, jumpHash, shardCell, tenantKey64, type LiveRouter } from '../src/index.js';
import { parseConfig } from '../src/config/load.js';
import type { Config } from '../src/config/types.js';
import { Catalog } from '../src/catalog/catalog.js';
import { syncTopology } from '../src/catalog/topology.js';
import { startFleet, type Fleet } from '../harness/fleet/index.js';
import { JUMP_POINTS, JUMP_TABLE } from './helpers/golden.js';
import { sql } from './helpers/fleet.js';

const jumpYaml = (shards: number, pins: Record<string, string> = {}) => `
source: postgres://app@mono/pos
strategy: { kind: jump, key: restaurant_id, pins: ${JSON.stringify(pins)} }
shards: [ ${Array.from({ length: shards }, (_, i) => `{ id: s${i}, primary: "postgres://app:secret${i}@h${i}/db", replicas: ["postgres://app:rsecret@r${i}/db"] }`).join(', ')} ]
tables: [ { name: orders } ]
`;

const seoul = shardCell(37.5665, 126.978);
const tokyo = shardCell(35.6762, 139.6503);
const pentagon = getPentagons(3)[0]!;
const h3Config = parseConfig(`
source: postgres://app@mono/geo
strategy: { kind: h3, defaultShard: us, mapping: [ { cell: "${seoul}", shard: kr, region: Seoul }, { cell: "${tokyo.toUpperCase()}", shard: jp }, { cell: "${pentagon}", shard: jp, capacity_status: full } ] }
shards: [ { id: us, primary: "postgres://a:pw@h0/db" }, { id: kr, primary: "postgres://a:pw@h1/db" }, { id: jp, primary: "postgres://a:pw@h2/db" } ]
tables: [ { name: locations, lat: latitude, lng: longitude } ]
`);

/** Tenants whose routing key is above 2^63 and below, both present. */
const TENANTS = [...Array.from({ length: 400 }, (_, i) => String(i)), 'restaurant-ü', '', '9007199254740993', '東京-7'];

describe('catalog topology and SQL routing functions', () => {
  let fleet: Fleet;
  let url: string;
  let catalog: Catalog;
  const sync = (c: Config) => syncTopology(catalog.client, c);
  const version = async () => Number((await sql(url, 'SELECT version FROM shardctl.topology_version'))[0].version);

  before(async () => {
    fleet = await startFleet({ shards: 0 });
    url = fleet.source.url();
    catalog = await Catalog.open(url);
  });
  after(async () => {
    await catalog?.close();
    await fleet?.stop();
  });

  it('shardctl.jump_hash matches the library golden vectors, including a key above 2^63', async () => {
    const cases = [...JUMP_TABLE.flatMap(([k, want]) => want.map((w, i) => [k, i + 1, w] as const)), ...JUMP_POINTS];
    const got = await sql(url, 'SELECT shardctl.jump_hash(k::numeric, b) AS j FROM unnest($1::text[], $2::int[]) WITH ORDINALITY AS x(k, b, n) ORDER BY n', [
      cases.map((c) => String(c[0])),
      cases.map((c) => c[1]),
    ]);
    assert.deepEqual(got.map((r) => r.j), cases.map((c) => c[2]));
    await assert.rejects(sql(url, `SELECT shardctl.jump_hash(18446744073709551616, 3)`), /not an unsigned 64-bit integer/);
  });

  it('shardctl.shard_for_key routes every tenant as the library does, pins first', async () => {
    const config = parseConfig(jumpYaml(5, { '7': 's1', 'restaurant-ü': 's4' }));
    await sync(config);
    const keys = await sql(url, 'SELECT t, shardctl.tenant_key64(t)::text AS k, shardctl.shard_for_key(t) AS s FROM unnest($1::text[]) AS t', [TENANTS]);
    const router = createRouter(config);
    let above = 0;
    for (const r of keys) {
      assert.equal(BigInt(r.k), tenantKey64(r.t), `tenant_key64(${r.t})`);
      assert.equal(r.s, router.shardFor(r.t), `shard_for_key(${r.t})`);
      if (BigInt(r.k) >= 2n ** 63n) above++;
    }
    assert.ok(above > 100 && above < 300, `${above} of ${TENANTS.length} keys are above 2^63`);
    assert.equal(keys.find((r) => r.t === '7').s, 's1');
    assert.notEqual(['s0', 's1', 's2', 's3', 's4'][jumpHash(tenantKey64('7'), 5)], 's1', 'tenant 7 is routed by its pin, not the hash');
    await assert.rejects(sql(url, `SELECT shardctl.shard_for_cell(${BigInt(`0x${seoul}`)})`), /needs the h3 strategy; the catalog topology uses jump/);
  });

  it('shardctl.shard_for_cell takes an H3 index at any resolution ≥ the shard resolution', async () => {
    await sync(h3Config);
    const router = createRouter(h3Config);
    const cells: string[] = [seoul, tokyo, pentagon, ...cellToChildren(pentagon, 5)];
    for (let lat = 33; lat < 38; lat += 0.4) {
      for (let lng = 126; lng < 141; lng += 0.6) for (const res of [3, 7, 12, 15]) cells.push(latLngToCell(lat, lng, res));
    }
    cells.push(latLngToCell(37.7749, -122.4194, 9), latLngToCell(-33.9, 151.2, 4));
    const got = await sql(url, 'SELECT c, shardctl.shard_for_cell(c::bigint) AS s, shardctl.shard_for_cell(h) AS t, to_hex(shardctl.h3_parent(c::bigint, 3)) AS p FROM unnest($1::text[], $2::text[]) AS x(c, h)', [
      cells.map((c) => String(BigInt(`0x${c}`))),
      cells,
    ]);
    for (const [i, r] of got.entries()) {
      assert.equal(r.p, cellToParent(cells[i]!, 3), `parent of ${cells[i]}`);
      assert.equal(r.s, router.shardForCell(cells[i]!), `shard_for_cell(${cells[i]})`);
      assert.equal(r.t, r.s, 'the hex-text form routes alike');
    }
    assert.deepEqual(new Set(got.map((r) => r.s)), new Set(['us', 'kr', 'jp']));
    await assert.rejects(sql(url, `SELECT shardctl.shard_for_cell(${BigInt(`0x${cellToParent(seoul, 2)}`)})`), /resolution 2, coarser than the shard resolution 3/);
    await assert.rejects(sql(url, `SELECT shardctl.shard_for_cell(42)`), /not an H3 cell index/);
    const stored = await sql(url, 'SELECT cell, shard, region, capacity_status FROM shardctl.cell_mapping ORDER BY cell');
    assert.deepEqual(stored.find((m) => m.cell === pentagon), { cell: pentagon, shard: 'jp', region: null, capacity_status: 'full' });
    assert.equal(stored.find((m) => m.cell === tokyo)!.shard, 'jp', 'cells are stored lower-case, as H3 prints them');
  });

  it('bumps the version once per changing transaction, never for a resync of the same topology, with a NOTIFY', async () => {
    const listener = new pg.Client({ connectionString: url });
    await listener.connect();
    const heard: string[] = [];
    listener.on('notification', (n) => heard.push(n.payload ?? ''));
    await listener.query('LISTEN shardctl_topology');
    try {
      const v0 = await version();
      await sync(h3Config);
      assert.equal(await version(), v0, 'the same topology again changes nothing');
      await sync(parseConfig(jumpYaml(3)));
      const v1 = await version();
      assert.equal(v1, v0 + 1, 'strategy, shards and mapping rewritten in one transaction: one version');
      await sync(parseConfig(jumpYaml(3, { '42': 's2' })));
      assert.equal(await version(), v1 + 1);
      await listener.query('SELECT 1'); // notifications ride on the next message
      assert.deepEqual(heard, [String(v1), String(v1 + 1)]);
      const shards = await sql(url, 'SELECT id, primary_url, replica_urls FROM shardctl.shards ORDER BY position');
      assert.deepEqual(shards[2], { id: 's2', primary_url: 'postgres://app:***@h2/db', replica_urls: ['postgres://app:***@r2/db'] });
      assert.doesNotMatch(JSON.stringify(await sql(url, 'SELECT * FROM shardctl.shards')), /secret/, 'no password in the catalog');
    } finally {
      await listener.end();
    }
  });

  describe('createRouter({ catalog })', () => {
    let router: LiveRouter;
    before(async () => {
      await sync(parseConfig(jumpYaml(3)));
      router = await createRouter({ catalog: url, backoffMs: { initial: 20, max: 200 } });
    });
    after(() => router?.close());

    it('loads the topology and follows changes live', async () => {
      const local = createRouter(parseConfig(jumpYaml(3)));
      for (const t of TENANTS.slice(0, 50)) assert.equal(router.shardFor(t), local.shardFor(t));
      const four = parseConfig(jumpYaml(4, { '3': 's0' }));
      await sync(four);
      await router.waitForVersion(await version());
      assert.deepEqual(router.shards, ['s0', 's1', 's2', 's3']);
      for (const t of TENANTS) assert.equal(router.shardFor(t), createRouter(four).shardFor(t), `tenant ${t}`);
    });

    it('never routes with a half-applied topology: a change is seen whole at commit', async () => {
      const before = router.version;
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        await c.query('BEGIN');
        await c.query(`INSERT INTO shardctl.shards (id, position, primary_url) VALUES ('s4', 4, 'postgres://x@h/db')`);
        await c.query(`INSERT INTO shardctl.pins (tenant, shard) VALUES ('99', 's4')`);
        await new Promise((r) => setTimeout(r, 300));
        assert.equal(router.version, before);
        assert.equal(router.shards.length, 4);
        await c.query('COMMIT');
      } finally {
        await c.end();
      }
      await router.waitForVersion(before + 1);
      assert.equal(router.version, before + 1, 'two tables changed in one transaction: one version');
      assert.equal(router.shards.length, 5);
      assert.equal(router.shardFor('99'), 's4');
    });

    it('reconnects after losing the catalog connection and catches up on what it missed', async () => {
      const seen = router.version;
      const pids = async () => (await sql(url, `SELECT pid FROM pg_stat_activity WHERE application_name = 'shardctl router'`)).map((r) => r.pid);
      const [old] = await pids();
      await sql(url, 'SELECT pg_terminate_backend($1)', [old]);
      // changed while the router may be disconnected: no notification reaches it
      await sync(parseConfig(jumpYaml(3, { '5': 's2' })));
      await router.waitForVersion(seen + 1);
      assert.deepEqual(router.shards, ['s0', 's1', 's2']);
      assert.equal(router.shardFor('5'), 's2');
      assert.equal(router.connected, true);
      const now = await pids();
      assert.equal(now.length, 1);
      assert.notEqual(now[0], old, 'a new LISTEN connection');
    });

    it('refuses a catalog that holds no topology yet, naming it', async () => {
      await sql(url, 'CREATE DATABASE empty_catalog');
      await assert.rejects(createRouter({ catalog: fleet.source.url('empty_catalog') }), /no topology tables/);
    });
  });
});
