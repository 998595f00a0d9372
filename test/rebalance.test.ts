import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../src/config/load.js';
import type { Stage } from '../harness/demo/stage.js';
import { stageMigrated } from './helpers/stage.js';
import { jumpHash } from '../src/routing/jump.js';
import { tenantKey64 } from '../src/routing/tenant-key.js';
import { topologyRouter } from '../src/routing/router.js';
import { cellToLatLng, gridDisk } from 'h3-js';
import pg from 'pg';
import { shardCell } from '../src/cells/h3.js';
import { cellBox } from '../src/fence/unit-guard.js';
import { STEPS } from '../src/rebalance/journal.js';
import { runCli, runCliKilledAt } from './helpers/cli.js';
import { assertExact } from './helpers/exact.js';
import { sql } from './helpers/fleet.js';
import { restaurantCount } from '../harness/fixtures/index.js';

// 23 restaurants: the smallest POS fleet whose 4 → 5 jump moves two of them (18 and 23), and that
// holds the tenants the subtests move (3, 10–16, 20); each subtest's assertExact reads all of it
const SCALE = 0.023;

const shardOf = async (cfg: string, unit: string) =>
  (await sql(loadConfig(cfg).catalog, 'SELECT shard FROM shardctl.placements WHERE unit = $1', [unit]))[0]?.shard as string;

/** rows of a tenant's orders on each shard */
async function ordersOn(cfg: string, tenant: string): Promise<Record<string, number>> {
  const c = loadConfig(cfg);
  const out: Record<string, number> = {};
  for (const s of c.shards) out[s.id] = Number((await sql(s.primary, 'SELECT count(*) AS n FROM orders WHERE restaurant_id = $1', [tenant]))[0].n);
  return out;
}

describe('rebalance: POS fixture (jump)', () => {
  let stage: Stage;
  let cfg: string;
  before(async () => {
    stage = await stageMigrated({ kind: 'pos', shards: 4, scale: SCALE });
    cfg = stage.configPath;
  });
  after(() => stage?.stop());

  it('4 → 5 shards: the plan moves only tenants whose bucket becomes the new shard (about 1/5), then exact', async () => {
    const fifth = await stage.fleet.addShard();
    const plan = runCli(['add-shard', '--config', cfg, '--id', 's4', '--primary', fifth.primary.url(), '--json']);
    assert.equal(plan.status, 0, plan.stderr);
    const p = JSON.parse(plan.stdout);
    assert.equal(p.applied, false);
    const expected = [...Array(restaurantCount(SCALE)).keys()].map((i) => String(i + 1)).filter((u) => jumpHash(tenantKey64(u), 5) === 4);
    assert.deepEqual(p.moves.map((m: { unit: string }) => m.unit).sort(), expected.sort());
    for (const m of p.moves) assert.equal(m.to, 's4');
    assert.ok(expected.length >= 2 && expected.length <= 12, `${expected.length} of ${restaurantCount(SCALE)} move`);
    assert.doesNotMatch(plan.stdout + plan.stderr, new RegExp(fifth.primary.password), 'no password printed');
    // a preview: nothing moved, and the config does not list s4 yet
    assert.equal(loadConfig(cfg).shards.at(-1)!.id, 's3');
    const apply = runCli(['add-shard', '--config', cfg, '--id', 's4', '--primary', fifth.primary.url(), '--apply']);
    assert.equal(apply.status, 0, apply.stderr);
    assert.match(apply.stdout, new RegExp(`moved ${expected.length} of ${expected.length} unit\\(s\\)`));
    await assertExact(loadConfig(cfg));
    assert.equal(runCli(['rebalance', '--config', cfg]).stdout.trim(), 'placements match the topology: nothing to move');
  });

  it('pin isolates a hot tenant on its own shard', async () => {
    const router = topologyRouter(loadConfig(cfg));
    const tenant = '3'; // the fixture's hot tenant
    const target = ['s0', 's1', 's2', 's3', 's4'].find((s) => s !== router.shardFor(tenant))!;
    const r = runCli(['pin', tenant, target, '--apply', '--config', cfg]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(await shardOf(cfg, tenant), target);
    const c = loadConfig(cfg);
    assert.equal(c.strategy.kind === 'jump' && c.strategy.pins[tenant], target);
    await assertExact(c);
  });

  for (const step of STEPS) {
    it(`offline: SIGKILL right after step "${step}", then a rerun ends exact`, async () => {
      const c = loadConfig(cfg);
      const router = topologyRouter(c);
      // a tenant not yet pinned, moved by a new pin
      const tenant = String(10 + STEPS.indexOf(step));
      const from = router.shardFor(tenant);
      const to = c.shards.map((s) => s.id).find((s) => s !== from)!;
      const source = Number((await sql(c.source, 'SELECT count(*) AS n FROM orders WHERE restaurant_id = $1', [tenant]))[0].n);
      const killed = runCliKilledAt(step, ['pin', tenant, to, '--apply', '--offline', '--config', cfg]);
      assert.equal(killed.status, null, `killed after ${step}: ${killed.stderr}`);
      // at this moment the placed shard holds the whole unit, and only it is writable
      const placedOn = await shardOf(cfg, tenant);
      const counts = await ordersOn(cfg, tenant);
      assert.equal(counts[placedOn], source, `after ${step}: the placed shard ${placedOn} holds the unit`);
      const journal = await sql(c.catalog, 'SELECT step FROM shardctl.moves WHERE unit = $1', [tenant]);
      assert.deepEqual(journal, [{ step }]);
      const rerun = runCli(['rebalance', '--apply', '--config', cfg]);
      assert.equal(rerun.status, 0, rerun.stderr);
      assert.equal(await shardOf(cfg, tenant), to);
      assert.deepEqual(await sql(c.catalog, 'SELECT * FROM shardctl.moves'), []);
      const fences = await sql(c.shards.find((s) => s.id === to)!.primary, 'SELECT unit FROM shardctl.fenced_units WHERE unit = $1', [tenant]);
      assert.deepEqual(fences, [], 'the fence is lifted on the new shard');
      await assertExact(loadConfig(cfg));
    });
  }

  it('writes: other tenants keep writing during a move, the moving tenant is refused cleanly, nothing is lost', async () => {
    const c = loadConfig(cfg);
    const router = topologyRouter(c);
    const tenant = '20';
    const from = router.shardFor(tenant);
    const to = c.shards.map((s) => s.id).find((s) => s !== from)!;
    const fromUrl = c.shards.find((s) => s.id === from)!.primary;
    const other = (await sql(fromUrl, 'SELECT DISTINCT restaurant_id::text AS t FROM themes WHERE restaurant_id <> $1 LIMIT 1', [tenant]))[0].t;
    const theme = (t: string) =>
      sql(fromUrl, `INSERT INTO themes (restaurant_id, name, is_default, colors, font, updated_at) VALUES ($1, 'app write', false, '{}', 'f', now()) RETURNING id`, [t]);
    // stop in the middle: fenced on both shards, nothing copied yet
    assert.equal(runCliKilledAt('fenced', ['pin', tenant, to, '--apply', '--offline', '--config', cfg]).status, null);
    await assert.rejects(theme(tenant), /shardctl: unit 20 is being moved from shard s\d to shard s\d; writes to it are refused until the move completes/);
    const toUrl = c.shards.find((s) => s.id === to)!.primary;
    await assert.rejects(
      sql(toUrl, `INSERT INTO themes (restaurant_id, name, is_default, colors, font, updated_at) VALUES ($1, 'early router', false, '{}', 'f', now())`, [tenant]),
      /is being moved/,
      'a router already on the new topology cannot write before the data arrives',
    );
    const written = [(await theme(other))[0].id];
    // complete the move while the application keeps writing to another tenant on the old shard
    const writes = (async () => {
      for (let i = 0; i < 20; i++) written.push((await theme(other))[0].id);
    })();
    assert.equal(runCli(['rebalance', '--apply', '--config', cfg]).status, 0);
    await writes;
    const kept = await sql(fromUrl, 'SELECT count(*) AS n FROM themes WHERE id = ANY($1::bigint[])', [written]);
    assert.equal(Number(kept[0].n), written.length, 'every acknowledged write to another tenant is there');
    await assert.rejects(theme(tenant), /unit 20 has moved to shard/, 'the old shard keeps refusing the moved tenant');
    // the app's own writes are not on the source: compare the moved tenant only
    assert.equal((await ordersOn(cfg, tenant))[to], Number((await sql(c.source, 'SELECT count(*) AS n FROM orders WHERE restaurant_id = $1', [tenant]))[0].n));
  });
});

describe('rebalance: location fixture (h3 mapping edit)', () => {
  let stage: Stage;
  before(async () => {
    stage = await stageMigrated({ kind: 'location', shards: 3, scale: 0.002 });
  });
  after(() => stage?.stop());

  it('moves an H3 cell to another shard with `mapping set`, exact afterwards', async () => {
    const placed = await sql(stage.config.catalog, `SELECT unit, shard, rows FROM shardctl.placements WHERE shard = 's0' ORDER BY rows DESC LIMIT 1`);
    const cell = placed[0].unit;
    const r = runCli(['mapping', 'set', cell, 's2', '--region', 'moved', '--apply', '--config', stage.configPath]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /moved 1 of 1 unit\(s\)/);
    assert.equal(await shardOf(stage.configPath, cell), 's2');
    await assertExact(loadConfig(stage.configPath));

    // The old shard's tombstone refuses the moved cell's points and nothing else: a point just across
    // its edge, in a neighbouring cell that stays on s0, is still written there.
    const config = loadConfig(stage.configPath);
    const router = topologyRouter(config);
    const neighbour = gridDisk(cell, 1).find((n) => n !== cell && router.shardForCell(n) === 's0');
    assert.ok(neighbour, `a neighbour of ${cell} placed on s0`);
    const [cLat, cLng] = cellToLatLng(cell);
    const [nLat, nLng] = cellToLatLng(neighbour);
    const at = (t: number): [number, number] => [cLat + (nLat - cLat) * t, cLng + (nLng - cLng) * t];
    let t = 0.5; // walk from the shared edge to the first point of each side
    while (shardCell(...at(t)) === cell) t += 0.002;
    const outside = at(t);
    while (shardCell(...at(t)) !== cell) t -= 0.002;
    const inside = at(t);
    const box = cellBox(cell);
    assert.ok(outside[0] >= box.minLat && outside[0] <= box.maxLat && outside[1] >= box.minLng && outside[1] <= box.maxLng, 'inside the box');
    const insert = `INSERT INTO locations (profile_id, latitude, longitude, accuracy_m, source, recorded_at) VALUES (1, $1, $2, 5, 'test', now())`;
    const app = new pg.Client({ connectionString: config.shards[0]!.primary, application_name: 'app' });
    await app.connect();
    try {
      await app.query('BEGIN');
      await app.query(insert, outside); // refused by the old bounding-box fence
      await app.query('ROLLBACK');
      await assert.rejects(app.query(insert, inside), new RegExp(`unit ${cell} has moved to shard s2`));
    } finally {
      await app.end();
    }
  });
});
