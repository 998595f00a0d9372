import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../src/config/load.js';
import { jumpHash, tenantKey64, type LiveRouter } from '../src/index.js';
import type { Stage } from '../harness/demo/stage.js';
import { stageMigrated } from './helpers/stage.js';
import { createFixtureSchema } from '../harness/fixtures/index.js';
import { withClient } from '../src/db/connect.js';
import { runCli, runCliKilledAt } from './helpers/cli.js';
import { sql } from './helpers/fleet.js';
import { assertLanded as landed, assertOutageOnly, openRouting, runLogged, sampleRoutes, startRoutedWriter, type RoutedWriter, type RouteSampler } from './helpers/route-oracle.js';

/**
 * Issue #24: a route is where the unit's rows are. Applications routing through the catalog (a live
 * router, the SQL function) write while add-shard, rebalance, pin and remove-shard run; a sampler
 * checks with its own SQL that every unit's route names a shard holding its rows; each writer's log
 * of acknowledged rows must end exactly on its tenant's shard, refused only around its own move.
 */
const ROUTE_SQL = 'SELECT u AS unit, shardctl.shard_for_key(u) AS shard FROM unnest($1::text[]) AS u';
const HOLDERS_SQL = 'SELECT id::text AS u FROM restaurants UNION SELECT restaurant_id::text FROM themes';
const THEME = {
  text: `INSERT INTO themes (restaurant_id, name, is_default, colors, font, updated_at) VALUES ($1, $2, false, '{}', 'f', now()) RETURNING id::text AS id`,
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('routing follows the data (jump, POS fixture)', () => {
  let stage: Stage;
  let cfg: string;
  let router: LiveRouter;
  let app: Awaited<ReturnType<typeof openRouting>>;
  const servers = new Map<string, string>();
  const placements = async () => new Map((await sql(stage.config.catalog, 'SELECT unit, shard FROM shardctl.placements')).map((r) => [r.unit as string, r.shard as string]));
  const sqlRoute = (tenant: string) => async () => (await app.session.query('SELECT shardctl.shard_for_key($1) AS s', [tenant])).rows[0].s as string;
  const writer = (tenant: string, route: () => Promise<string> | string, tag: string) =>
    startRoutedWriter(() => servers, route, { text: THEME.text, values: (i) => [tenant, `${tag}-${i}`] });
  const sampler = (): RouteSampler => sampleRoutes(stage.config.catalog, () => servers, ROUTE_SQL, HOLDERS_SQL);

  const assertLanded = async (w: RoutedWriter, tenant: string, tag: string) =>
    landed(w, tenant, (await placements()).get(tenant)!, () => servers, `SELECT id::text AS id FROM themes WHERE restaurant_id = ${Number(tenant)} AND name LIKE $1`, tag);

  before(async () => {
    stage = await stageMigrated({ kind: 'pos', shards: 3, scale: 0.016 });
    cfg = stage.configPath;
    for (const s of stage.config.shards) servers.set(s.id, s.primary);
    app = await openRouting(stage.config.catalog);
    router = app.router;
  });
  after(async () => {
    await app?.close();
    await stage?.stop();
  });

  it('add-shard: its preview changes no route; --apply (killed, then resumed) moves each route at its own flip, under a live-router and a SQL-function writer', async (t) => {
    const fourth = await stage.fleet.addShard();
    // the tables exist, empty (add-shard accepts that), so the sampler can read the new server from the start
    await withClient({ label: 's3', url: fourth.primary.url() }, (c) => createFixtureSchema(c, 'pos'));
    servers.set('s3', fourth.primary.url());
    const placed = await placements();
    const moving = [...placed.keys()].filter((u) => jumpHash(tenantKey64(u), 4) === 3).sort((a, b) => Number(a) - Number(b));
    const staying = [...placed.keys()].find((u) => !moving.includes(u))!;
    assert.ok(moving.length >= 2, `${moving.length} tenants move to the new shard`);
    const [live, plain] = [moving[0]!, moving[1]!];
    const s = sampler();
    const wLive = writer(live, () => router.shardFor(live), 'live');
    const wSql = writer(plain, sqlRoute(plain), 'sql');
    const wStay = writer(staying, () => router.shardFor(staying), 'stay');
    await sleep(300);

    const preview = runCli(['add-shard', '--id', 's3', '--primary', fourth.primary.url(), '--config', cfg]);
    assert.equal(preview.status, 0, preview.stdout + preview.stderr);
    assert.match(preview.stdout, /nothing was changed/);
    await sleep(500);
    for (const [u, shard] of placed) {
      assert.equal((await sqlRoute(u)()), shard, `after the preview, shard_for_key('${u}') still names its placement`);
      assert.equal(router.shardFor(u), shard, `after the preview, the live router still sends ${u} to its placement`);
    }
    // --apply records the topology, each moving unit held on its placement; killed right after its
    // first move started, every moving unit still routes to the shard holding its rows
    const killed = runCliKilledAt('started', ['add-shard', '--id', 's3', '--primary', fourth.primary.url(), '--apply', '--config', cfg]);
    assert.equal(killed.status, null, `killed after the first move started: ${killed.stdout}${killed.stderr}`);
    for (const [u, shard] of placed) assert.equal((await sqlRoute(u)()), shard, `mid-rebalance, shard_for_key('${u}') still names its placement`);
    // shardctl route and the library say which topology and which held routes they answer with
    const version = Number((await sql(stage.config.catalog, 'SELECT version FROM shardctl.topology_version'))[0].version);
    const shown = runCli(['route', live, staying, '--json', '--config', cfg]);
    assert.equal(shown.status, 0, shown.stderr);
    assert.deepEqual(JSON.parse(shown.stdout), [
      { key: live, shard: placed.get(live), pinned: false, version, movingTo: 's3' },
      { key: staying, shard: placed.get(staying), pinned: false, version },
    ]);
    const text = runCli(['route', live, '--config', cfg]);
    assert.equal(text.stdout, `${live}\t${placed.get(live)} (moving to s3: routes here until its move flips)\n`);
    assert.match(text.stderr, new RegExp(`routed with the catalog's topology version ${version}; ${moving.length} unit\\(s\\) route to the shard holding their rows until their move flips`));
    await router.waitForVersion(version);
    assert.deepEqual(router.held.get(live), { shard: placed.get(live), wanted: 's3' });
    assert.equal(router.held.size, moving.length);

    const r = await runLogged(cfg, loadConfig(cfg).shards.some((x) => x.id === 's3') ? ['rebalance', '--apply'] : ['add-shard', '--id', 's3', '--primary', fourth.primary.url(), '--apply']);
    await sleep(300);
    await Promise.all([wLive.stop(), wSql.stop(), wStay.stop()]);
    const sampled = await s.stop();
    assert.equal(r.status, 0, r.out);
    assert.deepEqual(sampled.problems, [], `${sampled.samples} samples`);
    assert.ok(sampled.samples >= 3, `${sampled.samples} samples checked`);
    assert.deepEqual(await s.once(), []);
    for (const u of moving) assert.equal((await placements()).get(u), 's3');
    await assertLanded(wLive, live, 'live');
    await assertLanded(wSql, plain, 'sql');
    await assertLanded(wStay, staying, 'stay');
    t.diagnostic(assertOutageOnly(wLive, live, r));
    t.diagnostic(assertOutageOnly(wSql, plain, r));
    assert.deepEqual(wStay.refusals, [], 'a unit that does not move is never refused');
    await router.waitForVersion(Number((await sql(stage.config.catalog, 'SELECT version FROM shardctl.topology_version'))[0].version));
    for (const u of placed.keys()) assert.equal(router.shardFor(u), (await placements()).get(u), `live router: ${u}`);
    assert.equal(router.held.size, 0, 'every move flipped: no route is held');
  });

  it('pin --apply: only the pinned tenant changes route, at its flip', async (t) => {
    const placed = await placements();
    const tenant = [...placed.keys()].sort((a, b) => Number(a) - Number(b))[0]!;
    const to = [...servers.keys()].find((x) => x !== placed.get(tenant))!;
    const s = sampler();
    const wLive = writer(tenant, () => router.shardFor(tenant), 'pin-live');
    const wSql = writer(tenant, sqlRoute(tenant), 'pin-sql');
    await sleep(300);
    const preview = runCli(['pin', tenant, to, '--config', cfg]);
    assert.equal(preview.status, 0, preview.stdout + preview.stderr);
    assert.equal(await sqlRoute(tenant)(), placed.get(tenant), 'the pin preview changes no route');
    const r = await runLogged(cfg, ['pin', tenant, to, '--apply']);
    await sleep(300);
    await Promise.all([wLive.stop(), wSql.stop()]);
    const sampled = await s.stop();
    assert.equal(r.status, 0, r.out);
    assert.deepEqual(sampled.problems, []);
    assert.equal((await placements()).get(tenant), to);
    await assertLanded(wLive, tenant, 'pin-live');
    await assertLanded(wSql, tenant, 'pin-sql');
    t.diagnostic(assertOutageOnly(wLive, tenant, r));
    t.diagnostic(assertOutageOnly(wSql, tenant, r));
  });

  it('remove-shard --apply: each drained tenant changes route at its own flip; the shard then leaves', async (t) => {
    const placed = await placements();
    const onLast = [...placed].filter(([, sh]) => sh === 's3').map(([u]) => u).sort();
    assert.ok(onLast.length >= 2);
    const [live, plain] = [onLast[0]!, onLast[1]!];
    const s = sampler();
    const wLive = writer(live, () => router.shardFor(live), 'rm-live');
    const wSql = writer(plain, sqlRoute(plain), 'rm-sql');
    await sleep(300);
    const r = await runLogged(cfg, ['remove-shard', 's3', '--apply']);
    await sleep(300);
    await Promise.all([wLive.stop(), wSql.stop()]);
    const sampled = await s.stop();
    assert.equal(r.status, 0, r.out);
    assert.deepEqual(sampled.problems, []);
    assert.deepEqual(loadConfig(cfg).shards.map((x) => x.id), ['s0', 's1', 's2']);
    await assertLanded(wLive, live, 'rm-live');
    await assertLanded(wSql, plain, 'rm-sql');
    t.diagnostic(assertOutageOnly(wLive, live, r));
    t.diagnostic(assertOutageOnly(wSql, plain, r));
  });
});
