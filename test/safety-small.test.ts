import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cellToLatLng, cellToParent, getPentagons, getResolution, latLngToCell } from 'h3-js';
import { h3Sql } from '../src/cells/h3-sql.js';
import { prepareShardState } from '../src/stream/positions.js';
import pg from 'pg';
import { loadConfig } from '../src/config/load.js';
import { copyRows } from '../src/copy/pipe.js';
import { connect, withClient } from '../src/db/connect.js';
import { stageFleet, type Stage } from '../harness/demo/stage.js';
import { startServer, type ServerHandle } from '../harness/fleet/index.js';
import { migrate } from '../src/migrate/index.js';
import { fenceUnits } from '../src/fence/unit-fence.js';
import { installGuard } from '../src/fence/unit-guard.js';
import { loadModel } from '../src/tables/model.js';
import { runCli } from './helpers/cli.js';
import { sql } from './helpers/fleet.js';

describe('one server: streaming decode, identifiers in function bodies', () => {
  let dir: string;
  let server: ServerHandle;
  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'shardctl-safety-'));
    chmodSync(dir, 0o755); // the server may run as another OS user
    server = await startServer({ name: 'one', dir });
  });
  after(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('copyRows keeps multi-byte characters that straddle two chunks of the COPY stream', async () => {
    const c = await connect({ label: 'one', url: server.url() });
    try {
      // ~1 MB of 3-byte characters: chunk edges fall inside characters many times
      let n = 0;
      for await (const [id, text] of copyRows(c, `SELECT i, repeat('한글é', 40) || i FROM generate_series(1, 8000) i`)) {
        assert.equal(text, `${'한글é'.repeat(40)}${id}`, `row ${id}`);
        n++;
      }
      assert.equal(n, 8000);
    } finally {
      await c.end();
    }
  });

  it("the database's own latLngToCell (the fence's) equals h3-js at every resolution, poles, antimeridian and pentagons included", async () => {
    const c = await connect({ label: 'one', url: server.url() });
    try {
      await c.query('CREATE SCHEMA IF NOT EXISTS shardctl');
      for (const s of h3Sql()) await c.query(s);
      const pts: [number, number, number][] = [];
      let seed = 7;
      const rand = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
      for (let n = 0; n < 3000; n++) pts.push([(Math.asin(2 * rand() - 1) * 180) / Math.PI, 360 * rand() - 180, n % 16]);
      for (const [lat, lng] of [[90, 0], [-90, 0], [0, 180], [0, -180], [89.9999, 179.9999], [-0.0, 0.0]]) for (const res of [0, 3, 12, 15]) pts.push([lat!, lng!, res]);
      // every pentagon's centre and points just around it, where the k-axis digit is skipped
      for (const p of getPentagons(0)) {
        const [lat, lng] = cellToLatLng(p);
        for (const [dl, dg] of [[0, 0], [0.3, 0], [-0.3, 0.2], [0.1, -0.4], [-0.2, -0.2], [1e-9, 1e-9]]) for (const res of [3, 12]) pts.push([lat + dl!, lng + dg!, res]);
      }
      const r = await c.query<{ h: string }>(
        'SELECT to_hex(shardctl.h3_cell(p.lat, p.lng, p.res)) AS h FROM unnest($1::float8[], $2::float8[], $3::int[]) WITH ORDINALITY p(lat, lng, res, n) ORDER BY p.n',
        [pts.map((p) => p[0]), pts.map((p) => p[1]), pts.map((p) => p[2])],
      );
      const wrong = pts.filter((p, i) => latLngToCell(p[0], p[1], p[2]) !== r.rows[i]!.h);
      assert.deepEqual(wrong.slice(0, 5), [], `${wrong.length} of ${pts.length} points differ`);
    } finally {
      await c.end();
    }
  });

  it('several sessions preparing the stream state on one server at once all succeed (two moves into one shard)', async () => {
    const clients = await Promise.all([1, 2, 3, 4, 5, 6].map(() => connect({ label: 'one', url: server.url() })));
    try {
      await Promise.all(clients.map((c) => c.query('DROP TABLE IF EXISTS shardctl.follow_position, shardctl.follow_stash, shardctl.follow_dirty, shardctl.follow_relfiles')));
      await Promise.all(clients.map((c) => prepareShardState(c)));
      const [n] = await sql(server.url(), `SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'shardctl' AND tablename LIKE 'follow\\_%'`);
      assert.equal(n.n, 4); // position, stash, dirty, relfiles
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
  });

  it('a table and a key column whose names hold $f$ and $$ get a working fence (no way out of the function body)', async () => {
    await server.query(`CREATE TABLE "odd$$t" (id bigint PRIMARY KEY, "tenant$f$id" bigint NOT NULL)`);
    const file = path.join(dir, 'odd.yaml');
    writeFileSync(file, [
      `source: ${server.url()}`,
      `strategy: { kind: jump, key: "tenant$f$id" }`,
      `shards:`,
      `  - { id: s0, primary: "${server.url()}" }`,
      `tables:`,
      `  - { name: "odd$$t" }`,
      '',
    ].join('\n'));
    const config = loadConfig(file);
    const e = { label: 'shard s0', url: server.url() };
    await withClient(e, async (c) => {
      const model = await loadModel(config, c);
      await installGuard(c, e, model);
      await fenceUnits(c, e, config, [{ unit: '7', from: 's0', to: 's1', role: 'source' }]);
    });
    const app = new pg.Client({ connectionString: server.url() });
    await app.connect();
    try {
      await assert.rejects(app.query(`INSERT INTO "odd$$t" VALUES (1, 7)`), /unit 7 is being moved/);
      await app.query(`INSERT INTO "odd$$t" VALUES (2, 8)`);
    } finally {
      await app.end();
    }
  });
});

describe('H3 index column at another resolution than cellResolution', () => {
  let stage: Stage;
  before(async () => {
    stage = await stageFleet({ kind: 'location', shards: 2, scale: 0.002 });
  });
  after(() => stage?.stop());

  it('migrate refuses, naming the table, the column and an example, instead of leaving the rows behind', async () => {
    const [room] = await stage.fleet.source.query(`SELECT id, lower(to_hex(h3_cell)) AS cell FROM chat_rooms ORDER BY id LIMIT 1`);
    const coarser = cellToParent(room.cell, getResolution(room.cell) - 2);
    await stage.fleet.source.query(`UPDATE chat_rooms SET h3_cell = $1 WHERE id = $2`, [BigInt(`0x${coarser}`).toString(), room.id]);
    const r = runCli(['migrate', '--config', stage.configPath]);
    assert.equal(r.status, 3, r.stdout + r.stderr);
    assert.match(r.stderr, new RegExp(`source: table public\\.chat_rooms: 1 row has an H3 index in h3_cell that is not a cell of resolution 12 \\(cellResolution\\), e\\.g\\. ${coarser}; they would not be copied`));
    for (const s of stage.config.shards) assert.deepEqual(await sql(s.primary, 'SELECT count(*)::int AS n FROM chat_rooms'), [{ n: 0 }], 'nothing copied');
    await assert.rejects(migrate(stage.config), /not a cell of resolution 12/);
  });
});
