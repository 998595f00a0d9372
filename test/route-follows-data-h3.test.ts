import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { cellToCenterChild, cellToParent } from 'h3-js';
import { loadConfig } from '../src/config/load.js';
import type { Stage } from '../harness/demo/stage.js';
import { stageMigrated } from './helpers/stage.js';
import { runCli } from './helpers/cli.js';
import { sql } from './helpers/fleet.js';
import { assertLanded, assertOutageOnly, openRouting, runLogged, sampleRoutes, startRoutedWriter, type RoutedWriter } from './helpers/route-oracle.js';

/**
 * Issue #24 for the h3 strategy: `mapping set --apply` and `remove-shard --apply` under writers that
 * route every chat room they create through the live router and through `shardctl.shard_for_cell`
 * (plain SQL, as an application in another language would); a sampler checks with its own SQL that
 * every placed cell routes to a shard holding its rows.
 */
const ROUTE_SQL = 'SELECT u AS unit, shardctl.shard_for_cell(u) AS shard FROM unnest($1::text[]) AS u';
const HOLDERS_SQL = 'SELECT h3_cell::text AS u FROM chat_rooms UNION SELECT h3_index::text FROM bumps';
const ROOM = `INSERT INTO chat_rooms (h3_cell, name, created_by, is_public, member_ids, created_at) VALUES ($1, $2, 1, true, '{}', now()) RETURNING id::text AS id`;
const cellOf = (index: string) => cellToParent(BigInt(index).toString(16), 3);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('routing follows the data (h3, location fixture)', () => {
  let stage: Stage;
  let cfg: string;
  let app: Awaited<ReturnType<typeof openRouting>>;
  const servers = new Map<string, string>();
  const placements = async () => new Map((await sql(stage.config.catalog, 'SELECT unit, shard FROM shardctl.placements')).map((r) => [r.unit as string, r.shard as string]));
  /** a res-12 index inside the cell, as the application stores it */
  const index = (cell: string) => BigInt(`0x${cellToCenterChild(cell, 12)}`).toString();
  const liveRoute = (cell: string) => () => app.router.shardForCell(cellToCenterChild(cell, 12));
  const sqlRoute = (cell: string) => async () => (await app.session.query('SELECT shardctl.shard_for_cell($1::bigint) AS s', [index(cell)])).rows[0].s as string;
  const writer = (cell: string, route: () => Promise<string> | string, tag: string) => startRoutedWriter(() => servers, route, { text: ROOM, values: (i) => [index(cell), `${tag}-${i}`] });
  const sampler = () => sampleRoutes(stage.config.catalog, () => servers, ROUTE_SQL, HOLDERS_SQL, cellOf);

  const landed = async (w: RoutedWriter, cell: string, tag: string) =>
    assertLanded(w, cell, (await placements()).get(cell)!, () => servers, 'SELECT id::text AS id FROM chat_rooms WHERE name LIKE $1', tag);

  before(async () => {
    stage = await stageMigrated({ kind: 'location', shards: 3, scale: 0.002 });
    cfg = stage.configPath;
    for (const s of stage.config.shards) servers.set(s.id, s.primary);
    app = await openRouting(stage.config.catalog);
  });
  after(async () => {
    await app?.close();
    await stage?.stop();
  });

  it('mapping set --apply: the remapped cell changes route at its own flip; shard_for_cell and the live router follow', async (t) => {
    const placed = await placements();
    const c = loadConfig(cfg);
    const mapped = c.strategy.kind === 'h3' ? c.strategy.mapping.map((m) => m.cell) : [];
    const [cell, other] = mapped.filter((m) => placed.has(m) && placed.get(m) !== 's0');
    assert.ok(cell && other, 'two mapped cells placed off the default shard');
    const from = placed.get(cell)!;
    const to = [...servers.keys()].find((s) => s !== from)!;
    const s = sampler();
    const wLive = writer(cell, liveRoute(cell), 'map-live');
    const wSql = writer(cell, sqlRoute(cell), 'map-sql');
    const wStay = writer(other, sqlRoute(other), 'map-stay');
    await sleep(300);
    const preview = runCli(['mapping', 'set', cell, to, '--config', cfg]);
    assert.equal(preview.status, 0, preview.stdout + preview.stderr);
    assert.equal(await sqlRoute(cell)(), from, 'the mapping preview changes no route');
    const r = await runLogged(cfg, ['mapping', 'set', cell, to, '--apply']);
    await sleep(300);
    await Promise.all([wLive.stop(), wSql.stop(), wStay.stop()]);
    const sampled = await s.stop();
    assert.equal(r.status, 0, r.out);
    assert.deepEqual(sampled.problems, [], `${sampled.samples} samples`);
    assert.ok(sampled.samples >= 2, `${sampled.samples} samples checked`);
    assert.equal((await placements()).get(cell), to);
    await landed(wLive, cell, 'map-live');
    await landed(wSql, cell, 'map-sql');
    await landed(wStay, other, 'map-stay');
    t.diagnostic(assertOutageOnly(wLive, cell, r));
    t.diagnostic(assertOutageOnly(wSql, cell, r));
    assert.deepEqual(wStay.refusals, [], 'a cell that does not move is never refused');
  });

  it('remove-shard --apply: each drained cell changes route at its own flip', async (t) => {
    const placed = await placements();
    const cells = [...placed].filter(([, sh]) => sh === 's2').map(([u]) => u).sort();
    assert.ok(cells.length >= 1);
    const [live, plain] = [cells[0]!, cells[1] ?? cells[0]!];
    const s = sampler();
    const wLive = writer(live, liveRoute(live), 'rm-live');
    const wSql = writer(plain, sqlRoute(plain), 'rm-sql');
    await sleep(300);
    const preview = runCli(['remove-shard', 's2', '--config', cfg]);
    assert.equal(preview.status, 0, preview.stdout + preview.stderr);
    assert.equal((await sqlRoute(live)()), 's2', 'the preview changes no route');
    const r = await runLogged(cfg, ['remove-shard', 's2', '--apply']);
    await sleep(300);
    await Promise.all([wLive.stop(), wSql.stop()]);
    const sampled = await s.stop();
    assert.equal(r.status, 0, r.out);
    assert.deepEqual(sampled.problems, []);
    assert.deepEqual(loadConfig(cfg).shards.map((x) => x.id), ['s0', 's1']);
    await landed(wLive, live, 'rm-live');
    await landed(wSql, plain, 'rm-sql');
    t.diagnostic(assertOutageOnly(wLive, live, r));
    t.diagnostic(assertOutageOnly(wSql, plain, r));
  });
});
