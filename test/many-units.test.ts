import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cellToParent, latLngToCell } from 'h3-js';
import { startFleet, type Fleet } from '../harness/fleet/index.js';
import { loadConfig } from '../src/config/load.js';
import { migrate } from '../src/migrate/index.js';
import { topologyRouter } from '../src/routing/router.js';
import { watchCli, runCli } from './helpers/cli.js';
import { assertExact } from './helpers/exact.js';
import { resetShards, sql } from './helpers/fleet.js';

/*
 * Cost per unit (issue 26): many small units share a batch — one snapshot, one COPY per table, one
 * grouped checksum query and one catalog write — and stay exact: every unit placed with its proof,
 * a kill mid-batch followed by a rerun exact, an H3 index column's many cells filtered exactly.
 */

const TENANTS = 1500;
const DDL = [
  'CREATE TABLE items (id bigint PRIMARY KEY, tenant bigint NOT NULL, payload text NOT NULL)',
  'CREATE INDEX ON items (tenant)',
  'CREATE TABLE item_tags (id bigint PRIMARY KEY, item_id bigint NOT NULL REFERENCES items (id), tag text)',
  'CREATE TABLE pings (id bigint PRIMARY KEY, h3 bigint NOT NULL, note text)',
];

describe('migrate: many small units in one batch', () => {
  let fleet: Fleet;
  let jumpCfg: string;
  let h3Cfg: string;
  before(async () => {
    fleet = await startFleet({ shards: 2 });
    for (const s of [fleet.source, ...fleet.shards.map((x) => x.primary)]) for (const d of DDL) await s.query(d);
    // 3 rows per tenant, the ids interleaving tenants (a tenant's rows are spread over the table); a tag on every other item
    await fleet.source.query(`INSERT INTO items SELECT i, i % ${TENANTS}, md5(i::text) FROM generate_series(1, ${TENANTS * 3}) i`);
    await fleet.source.query(`INSERT INTO item_tags SELECT i, i, 'tag ' || i FROM generate_series(1, ${TENANTS * 3}, 2) i`);
    // points over Europe: hundreds of resolution-3 cells, mapped to the shards alternately
    const points: { id: number; h3: string }[] = [];
    let x = 7;
    const rnd = () => (x = (x * 48271) % 2147483647) / 2147483647;
    for (let id = 1; id <= 3000; id++) points.push({ id, h3: latLngToCell(35 + 25 * rnd(), -10 + 40 * rnd(), 12) });
    await fleet.source.query(
      `INSERT INTO pings SELECT id, ('x' || lpad(h, 16, '0'))::bit(64)::bigint, 'p' || id FROM unnest($1::int[], $2::text[]) AS p(id, h)`,
      [points.map((p) => p.id), points.map((p) => p.h3)],
    );
    const cells = [...new Set(points.map((p) => cellToParent(p.h3, 3)))].sort();
    assert.ok(cells.length > 100, `${cells.length} cells`);
    const shards = fleet.shards.map((s) => ({ id: s.id, primary: s.primary.url() }));
    const write = (name: string, doc: object) => {
      const path = join(fleet.dir, name);
      writeFileSync(path, JSON.stringify(doc), { mode: 0o600 });
      return path;
    };
    jumpCfg = write('jump.yaml', {
      source: fleet.source.url(),
      strategy: { kind: 'jump', key: 'tenant' },
      shards,
      tables: [{ name: 'items' }, { name: 'item_tags', via: 'item_id -> items.id' }],
    });
    h3Cfg = write('h3.yaml', {
      source: fleet.source.url(),
      strategy: { kind: 'h3', defaultShard: shards[0]!.id, mapping: cells.map((cell, i) => ({ cell, shard: shards[i % 2]!.id })) },
      shards,
      tables: [{ name: 'pings', cell: 'h3' }],
    });
  });
  after(() => fleet?.stop());

  it('one batch per shard for 1,500 tenants; every unit placed where it routes, with a proof per table', async () => {
    const config = loadConfig(jumpCfg);
    const batches: number[] = [];
    const r = await migrate(config, { onEvent: (e) => void (e.type === 'batch' && batches.push(e.units.length)) });
    assert.equal(r.ok, true, JSON.stringify(r.errors));
    assert.equal(batches.length, 2, `batches of ${batches.join(', ')} units: the number of units does not cut a batch`);
    await assertExact(config);
    // the test's own oracle: the source's units and rows, against the catalog
    const router = topologyRouter(config);
    const src = await sql(config.source, 'SELECT tenant::text AS unit, count(*)::int AS n FROM items GROUP BY tenant');
    const tags = new Map((await sql(config.source, 'SELECT i.tenant::text AS unit, count(*)::int AS n FROM item_tags t JOIN items i ON i.id = t.item_id GROUP BY 1')).map((x) => [x.unit, x.n]));
    const placed = new Map((await sql(config.catalog, 'SELECT unit, shard, rows::int AS rows FROM shardctl.placements')).map((p) => [p.unit, p]));
    assert.equal(placed.size, TENANTS);
    const proofs = await sql(config.catalog, `SELECT unit, table_name, rows::int AS rows FROM shardctl.placement_tables WHERE checksum <> '0'`);
    const proofOf = new Map(proofs.map((p) => [`${p.unit} ${p.table_name}`, p.rows]));
    for (const s of src) {
      const p = placed.get(s.unit);
      assert.equal(p?.shard, router.shardFor(s.unit), `unit ${s.unit} placed where it routes`);
      assert.equal(p.rows, s.n + (tags.get(s.unit) ?? 0), `unit ${s.unit}: rows of both tables`);
      assert.equal(proofOf.get(`${s.unit} public.items`), s.n, `unit ${s.unit}: proof of items`);
      assert.equal(proofOf.get(`${s.unit} public.item_tags`), tags.get(s.unit), `unit ${s.unit}: proof of item_tags`);
    }
  });

  it('SIGKILL while a batch of many units streams, then a rerun: exact, the journaled units skipped', async () => {
    const config = loadConfig(jumpCfg);
    await resetShards(config);
    let batches = 0;
    // batches of about 1,200 rows (400 tenants): the kill lands in the second one's COPY
    const killed = await watchCli(['migrate', '--config', jumpCfg, '--json', '--concurrency', '1', '--batch-rows', '1200'], (e, child) => {
      if (e.type === 'batch') batches++;
      if (batches >= 1 && e.type === 'table' && e.table === 'public.items') child.kill('SIGKILL');
    });
    assert.equal(killed.status, null, 'the process was killed');
    const journaled = await sql(config.catalog, 'SELECT unit FROM shardctl.placements');
    assert.ok(journaled.length >= 300 && journaled.length < TENANTS, `${journaled.length} units journaled before the kill`);
    const r = runCli(['migrate', '--config', jumpCfg, '--json']);
    assert.equal(r.status, 0, r.stderr);
    const result = JSON.parse(r.stdout);
    assert.equal(result.units.skipped, journaled.length);
    assert.equal(result.units.copied, TENANTS - journaled.length);
    await assertExact(config);
    const placed = await sql(config.catalog, 'SELECT count(*)::int AS n FROM shardctl.placements');
    assert.equal(placed[0].n, TENANTS);
  });

  it('an H3 index column: hundreds of cells in one batch copy exactly the rows of those cells', async () => {
    await sql(fleet.source.url(), 'DROP SCHEMA IF EXISTS shardctl CASCADE');
    const config = loadConfig(h3Cfg);
    const batches = new Map<string, number>();
    const r = await migrate(config, { onEvent: (e) => void (e.type === 'batch' && batches.set(e.shard, e.units.length)) });
    assert.equal(r.ok, true, JSON.stringify(r.errors));
    assert.ok([...batches.values()].every((n) => n > 16), `batches of ${[...batches.values()].join(', ')} cells`);
    await assertExact(config);
    // a second run after emptying one shard copies only its cells back (the filter of a batch of cells, again)
    await sql(fleet.shards[1]!.primary.url(), 'TRUNCATE pings');
    await sql(config.catalog, 'DELETE FROM shardctl.placements WHERE shard = $1', [fleet.shards[1]!.id]);
    const again = await migrate(config, {});
    assert.equal(again.ok, true);
    assert.equal(again.units.skipped, batches.get(fleet.shards[0]!.id));
    await assertExact(config);
  });
});
