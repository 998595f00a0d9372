import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cellToParent, latLngToCell } from 'h3-js';
import { parse, stringify } from 'yaml';
import { loadConfig, parseConfig, UserError } from '../src/index.js';
import type { Config } from '../src/config/types.js';
import { crossShard } from '../src/two-phase/commit.js';
import { migrate } from '../src/migrate/index.js';
import { verify } from '../src/verify/index.js';
import { plan } from '../src/plan/index.js';
import { topologyRouter } from '../src/routing/router.js';
import { withClient } from '../src/db/connect.js';
import { loadModel } from '../src/tables/model.js';
import { installGuard } from '../src/fence/unit-guard.js';
import { fenceUnits, unfenceUnits } from '../src/fence/unit-fence.js';
import { stageFleet, type Stage } from '../harness/demo/stage.js';
import { runCli } from './helpers/cli.js';
import { sql } from './helpers/fleet.js';

const H3 = `source: postgres://app@db/x
strategy: { kind: h3, defaultShard: s0 }
shards: [ { id: s0, primary: postgres://app@s0/x }, { id: s1, primary: postgres://app@s1/x } ]
tables:
`;
const parentOf = (h3: string) => cellToParent(h3, 3);
const JUMP = H3.replace('{ kind: h3, defaultShard: s0 }', '{ kind: jump, key: user_id }');

function refused(text: string): string {
  try {
    parseConfig(text, 'x.yaml');
  } catch (e) {
    assert.ok(e instanceof UserError);
    assert.equal(e.exitCode, 2);
    return [e.message, ...e.details].join('\n');
  }
  assert.fail('loaded without error');
}

describe('config: a table with several routes', () => {
  it('takes cell routes (h3) and key routes (jump)', () => {
    const h3 = parseConfig(`${H3}  - { name: bumps, routes: [ { cell: user1_cell }, { cell: user2_cell, cellResolution: 12 } ] }\n`, 'x.yaml');
    assert.deepEqual(h3.tables[0]!.routes, [{ kind: 'cell', column: 'user1_cell', resolution: 12 }, { kind: 'cell', column: 'user2_cell', resolution: 12 }]);
    assert.deepEqual(h3.tables[0]!.route, h3.tables[0]!.routes![0]);
    const jump = parseConfig(`${JUMP}  - { name: bumps, routes: [ { key: user1_id }, { key: user2_id } ] }\n`, 'x.yaml');
    assert.deepEqual(jump.tables[0]!.routes!.map((r) => r.kind === 'key' && r.column), ['user1_id', 'user2_id']);
  });

  it('refuses bad route lists in one line each, naming file and key', () => {
    assert.match(refused(`${H3}  - { name: bumps, routes: [ { cell: a } ] }\n`), /^x\.yaml: tables\[0\]\.routes: needs two or more routes \(got 1\)/m);
    assert.match(refused(`${H3}  - { name: bumps, cell: a, routes: [ { cell: a }, { cell: b } ] }\n`), /x\.yaml: tables\[0\]\.routes: routes replace cell/);
    assert.match(refused(`${H3}  - { name: bumps, routes: [ { cell: a }, { cell: a } ] }\n`), /x\.yaml: tables\[0\]\.routes: column a is routed twice/);
    assert.match(refused(`${H3}  - { name: bumps, routes: [ { cell: a }, { key: b } ] }\n`), /x\.yaml: tables\[0\]\.routes\[1\]\.key: the h3 strategy routes by lat\/lng or cell/);
    assert.match(refused(`${H3}  - { name: bumps, routes: [ { cell: a }, { lat: x, lng: y } ] }\n`), /x\.yaml: tables\[0\]\.routes\[1\]: lat\/lng routes are not supported/);
    assert.match(refused(`${H3}  - { name: bumps, routes: [ { cell: a }, {} ] }\n`), /x\.yaml: tables\[0\]\.routes\[1\]: needs key, lat\/lng or cell/);
    assert.match(refused(`${JUMP}  - { name: bumps, routes: [ { key: a }, { cell: b } ] }\n`), /x\.yaml: tables\[0\]\.routes\[1\]: the jump strategy routes by key/);
    assert.match(refused(`${H3}  - { name: bumps, routes: [ { cell: a }, { cell: b, colour: red } ] }\n`), /x\.yaml: tables\[0\]\.routes\[1\].*colour/);
    assert.match(
      refused(`${H3}  - { name: bumps, routes: [ { cell: a }, { cell: b } ] }\n  - { name: notes, via: "bump_id -> bumps.id" }\n`),
      /x\.yaml: tables\[1\]\.via: parent table public\.bumps has several routes/,
    );
  });
});

/**
 * The location fixture with each participant's home cell on its bump: `bumps` routed by both, so a
 * bump between users homed on two shards lives on both. Real coordinates: the fixture's metro homes.
 */
describe('location fleet: cross-shard rows (a bump between users on two shards)', () => {
  let stage: Stage;
  let config: Config;
  let configPath: string;
  let bumps: number;
  const on = (shard: string) => config.shards.find((s) => s.id === shard)!.primary;

  before(async () => {
    stage = await stageFleet({ kind: 'location', shards: 2, scale: 0.002 });
    const homes = await sql<{ id: string; lat: number; lng: number }>(stage.config.source, 'SELECT id, home_lat AS lat, home_lng AS lng FROM profiles');
    const cell = (lat: number, lng: number) => BigInt(`0x${latLngToCell(lat, lng, 12)}`).toString();
    for (const url of [stage.config.source, ...stage.config.shards.map((s) => s.primary)]) {
      await sql(url, 'ALTER TABLE bumps ADD COLUMN user1_cell bigint, ADD COLUMN user2_cell bigint');
    }
    await sql(
      stage.config.source,
      `UPDATE bumps b SET user1_cell = (SELECT c FROM unnest($1::bigint[], $2::bigint[]) AS h(id, c) WHERE h.id = b.user1_id),
                          user2_cell = (SELECT c FROM unnest($1::bigint[], $2::bigint[]) AS h(id, c) WHERE h.id = b.user2_id)`,
      [homes.map((h) => h.id), homes.map((h) => cell(h.lat, h.lng))],
    );
    const doc = parse(readFileSync(stage.configPath, 'utf8'));
    doc.tables = doc.tables.map((t: { name: string }) => (t.name === 'bumps' ? { name: 'bumps', routes: [{ cell: 'user1_cell' }, { cell: 'user2_cell' }] } : t));
    configPath = join(stage.fleet.dir, 'cross.yaml');
    writeFileSync(configPath, stringify(doc), { mode: 0o600 });
    config = loadConfig(configPath);
    bumps = stage.rows.bumps!;
  });
  after(() => stage?.stop());

  it('migrate puts each cross-shard row on both shards once, records it, and verify expects exactly that', async () => {
    const m = await migrate(config);
    assert.ok(m.ok, JSON.stringify(m.errors.concat(m.failures as never[])));
    const [rec] = m.crossShard!;
    assert.equal(rec!.table, 'public.bumps');
    assert.equal(rec!.rows, bumps);
    assert.ok(rec!.crossShard > 0, 'the fixture has bumps between users homed on different shards');

    const onShard = await Promise.all(config.shards.map((s) => sql(s.primary, 'SELECT count(*)::int AS n FROM bumps')));
    assert.equal(onShard[0]![0].n + onShard[1]![0].n, bumps + rec!.crossShard, 'each cross-shard row twice, every other row once');
    const recorded = await sql(config.catalog, `SELECT row_key, shards FROM shardctl.cross_shard_rows WHERE table_name = 'public.bumps' ORDER BY row_key`);
    assert.equal(recorded.length, rec!.crossShard);
    const id = Number(/^id=(\d+)$/.exec(recorded[0].row_key)![1]);
    assert.deepEqual(recorded[0].shards, ['s0', 's1']);
    for (const s of config.shards) assert.equal((await sql(s.primary, 'SELECT 1 FROM bumps WHERE id = $1', [id])).length, 1, `bump ${id} on ${s.id}`);

    const v = await verify(config);
    assert.deepEqual(v.findings, []);
    assert.ok(v.ok);
    assert.deepEqual(v.crossShard, [{ table: 'public.bumps', rows: bumps, crossShard: rec!.crossShard }]);
    // after cutover (no source): the copies are compared with each other
    const shardsOnly = await verify(config, { placementOnly: true });
    assert.deepEqual(shardsOnly.findings, []);
    const p = await plan(config);
    assert.deepEqual(p.crossShard, [{ table: 'public.bumps', rows: bumps, crossShard: rec!.crossShard }]);
    assert.equal(p.tables.find((t) => t.table === 'public.bumps')!.rows, bumps, "plan counts the table's rows once");
    assert.ok(p.shards.reduce((n, s) => n + s.rows, 0) > p.rows, 'the shards hold the cross-shard rows twice');

    // the fixture's one-cell-per-metro mapping puts more than the design's 10% of bumps on two shards
    assert.ok(rec!.crossShard / rec!.rows > 0.1);
    const h = runCli(['health', '--config', configPath, '--json', '--latency-warning', '100s', '--latency-critical', '100s']);
    const catalogChecks = JSON.parse(h.stdout).catalog.checks;
    assert.ok(catalogChecks.some((c: { status: string; message: string }) => c.status === 'warning' && /% of public\.bumps's rows \(\d+ of \d+\) live on more than one shard, above the 10% alert/.test(c.message)), h.stdout);

    // a rerun copies the units again and leaves one copy per shard
    const again = await migrate(config, { resync: true });
    assert.ok(again.ok);
    assert.ok((await verify(config)).ok);
  });

  it('crossShard writes a new bump to both shards atomically and records it; verify passes', async () => {
    const router = topologyRouter(config);
    const users = await sql<{ id: string; lat: number; lng: number }>(config.source, 'SELECT id::text, home_lat AS lat, home_lng AS lng FROM profiles ORDER BY id');
    const a = users.find((u) => router.shardForLocation(u.lat, u.lng) === 's0')!;
    const b = users.find((u) => router.shardForLocation(u.lat, u.lng) === 's1')!;
    const cellOf = (u: { lat: number; lng: number }) => BigInt(`0x${latLngToCell(u.lat, u.lng, 12)}`).toString();
    const id = 9_500_001;
    const insert = `INSERT INTO bumps (id, user1_id, user2_id, latitude, longitude, h3_index, distance_m, confidence, is_cross_shard, bumped_at, user1_cell, user2_cell)
                    VALUES ($1, $2, $3, $4, $5, $6, 3.5, 0.9, true, '2026-01-01T00:00:00Z', $7, $8)`;
    const values = [id, a.id, b.id, a.lat, a.lng, cellOf(a), cellOf(a), cellOf(b)];
    // the monolith takes it as the application would before cutover; the shards through crossShard
    await sql(config.source, insert, values);
    const r = await crossShard(config, async (tx) => {
      for (const shard of new Set([tx.router.shardForCell(latLngToCell(a.lat, a.lng, 12)), tx.router.shardForCell(latLngToCell(b.lat, b.lng, 12))])) {
        await tx.query(shard, insert, values);
      }
      tx.crossRow('bumps', `id=${id}`);
    });
    assert.deepEqual(r.shards, ['s0', 's1']);
    assert.ok(r.gid);
    const rec = await sql(config.catalog, `SELECT shards, written_by FROM shardctl.cross_shard_rows WHERE table_name = 'public.bumps' AND row_key = $1`, [`id=${id}`]);
    assert.deepEqual(rec, [{ shards: ['s0', 's1'], written_by: 'crossShard' }]);
    const v = await verify(config);
    assert.deepEqual(v.findings, []);
  });

  it('a copy that differs and a missing copy make verify fail naming table, row key and shards', async () => {
    const [row] = await sql(config.catalog, `SELECT row_key FROM shardctl.cross_shard_rows WHERE written_by = 'migrate' ORDER BY row_key LIMIT 1`);
    const key: string = row.row_key;
    const id = Number(key.slice(3));
    await sql(on('s1'), 'UPDATE bumps SET distance_m = distance_m + 1 WHERE id = $1', [id]);
    const cli = runCli(['verify', '--config', configPath]);
    assert.equal(cli.status, 1, cli.stderr);
    assert.match(cli.stdout, new RegExp(`COPIES +table public\\.bumps, row ${key} \\(units .*; must be on s0 and s1\\): differs on s1`));
    assert.match(cli.stdout, /cross-shard rows: public\.bumps \d+ of \d+ \(\d+\.\d%\) live on more than one shard/);

    const shardsOnly = await verify(config, { placementOnly: true });
    assert.deepEqual(
      shardsOnly.findings.filter((x) => x.kind === 'copies').map((x) => x.kind === 'copies' && [x.key, x.shards]),
      [[key, [{ shard: 's0', state: 'differs' }, { shard: 's1', state: 'differs' }]]],
    );

    await sql(on('s1'), 'DELETE FROM bumps WHERE id = $1', [id]);
    const v = await verify(config);
    const f = v.findings.find((x) => x.kind === 'copies');
    assert.deepEqual(f && { key: f.key, table: f.table, shards: f.shards }, { key, table: 'public.bumps', shards: [{ shard: 's1', state: 'missing' }] });

    await runCli(['migrate', '--resync', '--units', (f as { units: string[] }).units.join(','), '--config', configPath]);
    assert.ok((await verify(config)).ok, 'the fix line (migrate --resync of its units) repairs it');
  });

  it('rebalance moves a cell: its rows keep a copy on the old shard while another unit of theirs lives there; verify passes', async () => {
    // a cell on s0 that has cross-shard rows (its other units on s1) and rows shared with another s0 cell
    const rows = await sql<{ u1: string; u2: string }>(on('s0'), `SELECT lower(to_hex(user1_cell)) AS u1, lower(to_hex(user2_cell)) AS u2 FROM bumps`);
    const router = topologyRouter(config);
    const unit = (h: string) => parentOf(h);
    const score = new Map<string, { cross: number; shared: number }>();
    for (const r of rows) {
      const [a, b] = [unit(r.u1), unit(r.u2)];
      if (a === b) continue;
      for (const [x, y] of [[a, b], [b, a]] as const) {
        if (router.shardForUnit(x) !== 's0') continue;
        const s = score.get(x) ?? score.set(x, { cross: 0, shared: 0 }).get(x)!;
        if (router.shardForUnit(y) === 's1') s.cross++;
        else s.shared++;
      }
    }
    const [cell] = [...score].filter(([, s]) => s.cross > 0 && s.shared > 0).sort((x, y) => y[1].shared - x[1].shared)[0]!;
    const r = runCli(['mapping', 'set', cell, 's1', '--apply', '--config', configPath]);
    config = loadConfig(configPath);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /cross-shard rows: public\.bumps \d+ of [\d,]+ \(\d+\.\d%\) live on more than one shard/);

    // the moved cell's rows shared with another s0 cell stay on s0 (now on s1 too); its rows with s1 cells left s0
    const after = await sql<{ u1: string; u2: string }>(on('s0'), `SELECT lower(to_hex(user1_cell)) AS u1, lower(to_hex(user2_cell)) AS u2 FROM bumps`);
    const left = after.filter((x) => unit(x.u1) !== unit(x.u2) && (unit(x.u1) === cell || unit(x.u2) === cell));
    assert.equal(left.length, score.get(cell)!.shared);
    const v = await verify(config);
    assert.deepEqual(v.findings, []);
    const counts = await Promise.all(config.shards.map((s) => sql(s.primary, 'SELECT count(*)::int AS n FROM bumps')));
    assert.equal(counts[0]![0].n + counts[1]![0].n, bumps + 1 + v.crossShard[0]!.crossShard);
  });

  it('the write fence refuses a write to a row when its second route leads to a unit being moved', async () => {
    const rows = await sql<{ id: string; u1: string; u2: string }>(on('s1'), `SELECT id::text, lower(to_hex(user1_cell)) AS u1, lower(to_hex(user2_cell)) AS u2 FROM bumps ORDER BY id`);
    const row = rows.find((r) => parentOf(r.u1) !== parentOf(r.u2));
    const unit = parentOf(row!.u2);
    const e = { label: 'shard s1', url: on('s1') };
    await withClient(e, async (c) => {
      await installGuard(c, e, await withClient({ label: 'source', url: config.source }, (src) => loadModel(config, src)));
      await fenceUnits(c, e, config, [{ unit, from: 's1', to: 's0', role: 'source' }]);
    });
    try {
      await assert.rejects(sql(on('s1'), 'UPDATE bumps SET distance_m = distance_m WHERE id = $1', [row!.id]), new RegExp(`unit ${unit} is being moved from shard s1 to shard s0`));
    } finally {
      await withClient(e, (c) => unfenceUnits(c, [unit]));
    }
    await sql(on('s1'), 'UPDATE bumps SET distance_m = distance_m WHERE id = $1', [row!.id]);
  });
});

/** jump: a transfer between two restaurants lives with both (key routes), on a small POS fleet. */
describe('POS fleet: key routes (jump)', () => {
  let stage: Stage;
  before(async () => {
    stage = await stageFleet({ kind: 'pos', shards: 3, scale: 0.006 });
  });
  after(() => stage?.stop());

  it('migrate and verify place a row of two tenants on both tenants\' shards', async () => {
    const ddl = 'CREATE TABLE transfers (id bigint PRIMARY KEY, from_restaurant integer NOT NULL, to_restaurant bigint NOT NULL, amount numeric(10,2) NOT NULL)';
    for (const url of [stage.config.source, ...stage.config.shards.map((s) => s.primary)]) await sql(url, ddl);
    await sql(
      stage.config.source,
      `WITH r AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS i, count(*) OVER () AS n FROM restaurants)
       INSERT INTO transfers SELECT g, a.id, b.id, g * 1.25 FROM generate_series(1, 60) g
         JOIN r a ON a.i = g % a.n JOIN r b ON b.i = (g * 7 + 1) % b.n`,
    );
    const doc = parse(readFileSync(stage.configPath, 'utf8'));
    doc.tables.push({ name: 'transfers', routes: [{ key: 'from_restaurant' }, { key: 'to_restaurant' }] });
    const path = join(stage.fleet.dir, 'transfers.yaml');
    writeFileSync(path, stringify(doc), { mode: 0o600 });
    const config = loadConfig(path);
    const m = await migrate(config);
    assert.ok(m.ok, JSON.stringify(m.errors));
    const router = topologyRouter(config);
    const rows = await sql<{ id: string; a: string; b: string }>(config.source, 'SELECT id::text, from_restaurant::text AS a, to_restaurant::text AS b FROM transfers');
    const cross = rows.filter((r) => router.shardFor(r.a) !== router.shardFor(r.b));
    assert.ok(cross.length > 0);
    assert.deepEqual(m.crossShard, [{ table: 'public.transfers', rows: 60, crossShard: cross.length }]);
    for (const s of config.shards) {
      const want = rows.filter((r) => router.shardFor(r.a) === s.id || router.shardFor(r.b) === s.id).map((r) => r.id).sort();
      const have = (await sql<{ id: string }>(s.primary, 'SELECT id::text FROM transfers')).map((r) => r.id).sort();
      assert.deepEqual(have, want, `transfers on ${s.id}`);
    }
    const v = await verify(config);
    assert.deepEqual(v.findings, []);
    // a unit-restricted run sees the same
    assert.deepEqual((await verify(config, { units: [cross[0]!.a] })).findings, []);
  });
});

