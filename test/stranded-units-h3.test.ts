import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { cellToCenterChild, cellToLatLng, cellToParent, latLngToCell } from 'h3-js';
import { stageFleet, type Stage } from '../harness/demo/stage.js';
import { migrate } from '../src/migrate/index.js';
import { sql } from './helpers/fleet.js';
import { runLogged } from './helpers/route-oracle.js';

/**
 * Issue #24, the last hole, h3: a cell CREATED while `mapping set` records its new mapping (after the
 * run's scan, before its commit), or later by a router on the old mapping, must never be stranded.
 * The run is frozen at the seam by holding the catalog's strategy row; the oracle is the test's own:
 * every cell with rows on any server (chat rooms by their cell column, locations and profiles by
 * their points through h3-js) against the route it computes from the catalog (held route, mapping,
 * else the default shard).
 */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('a cell created during a mapping change is never stranded (h3, location fixture)', () => {
  let stage: Stage;
  const servers = new Map<string, string>();
  // the middle of the Pacific: no metro of the fixture is near it, so no row is in it at migrate
  const cell = latLngToCell(0, -150, 3);
  const index = BigInt(`0x${cellToCenterChild(cell, 12)}`).toString();
  const [lat, lng] = cellToLatLng(cellToCenterChild(cell, 12));
  const route = async () => (await sql(stage.config.catalog, 'SELECT shardctl.shard_for_cell($1::bigint) AS s', [index]))[0].s as string;

  /** an application writing a chat room (cell column) and a location (lat/lng) into the cell on `shard`: the 40001 refusals */
  const write = async (shard: string): Promise<string[]> => {
    const refused: string[] = [];
    for (const [q, v] of [
      [`INSERT INTO chat_rooms (h3_cell, name, created_by, is_public, member_ids, created_at) VALUES ($1, 'born', 1, true, '{}', now())`, [index]],
      [`INSERT INTO locations (profile_id, latitude, longitude, accuracy_m, source, recorded_at) VALUES (1, $1, $2, 5, 'gps', now())`, [lat, lng]],
    ] as const) {
      await sql(servers.get(shard)!, q, [...v]).catch((e) => (e.code === '40001' ? refused.push(e.message) : Promise.reject(e)));
    }
    return refused;
  };

  /** The oracle: every cell with rows anywhere lives on exactly the shard its catalog route names. */
  const stranded = async (): Promise<string[]> => {
    const st = stage.config.strategy;
    if (st.kind !== 'h3') throw new Error('h3 fixture expected');
    const cat = stage.config.catalog;
    const held = new Map((await sql(cat, 'SELECT unit, shard FROM shardctl.held_routes')).map((r) => [r.unit as string, r.shard as string]));
    const mapped = new Map((await sql(cat, 'SELECT cell, shard FROM shardctl.cell_mapping')).map((r) => [r.cell as string, r.shard as string]));
    const fallback = (await sql(cat, 'SELECT default_shard FROM shardctl.strategy'))[0].default_shard as string;
    const routeOf = (u: string) => held.get(u) ?? mapped.get(u) ?? fallback;
    const on = new Map<string, Set<string>>();
    const add = (u: string, id: string) => (on.get(u) ?? on.set(u, new Set()).get(u)!).add(id);
    for (const [id, url] of servers) {
      for (const r of await sql(url, 'SELECT DISTINCT h3_cell::text AS c FROM chat_rooms UNION SELECT DISTINCT h3_index::text FROM bumps')) {
        add(cellToParent(BigInt(r.c).toString(16), st.shardResolution), id);
      }
      for (const r of await sql(url, 'SELECT DISTINCT latitude AS lat, longitude AS lng FROM locations UNION SELECT DISTINCT home_lat, home_lng FROM profiles')) {
        if (r.lat !== null) add(cellToParent(latLngToCell(r.lat, r.lng, st.indexResolution), st.shardResolution), id);
      }
    }
    const out: string[] = [];
    for (const [u, ids] of on) if (ids.size !== 1 || !ids.has(routeOf(u))) out.push(`cell ${u}: rows on ${[...ids].join(', ')}, catalog route ${routeOf(u)}`);
    return out;
  };

  before(async () => {
    stage = await stageFleet({ kind: 'location', shards: 3, scale: 0.002 });
    for (const s of stage.config.shards) servers.set(s.id, s.primary);
    assert.equal((await migrate(stage.config)).ok, true);
  });
  after(async () => {
    await stage?.stop();
  });

  it('mapping set --apply frozen between its scans and its commit: a cell created through the old route is refused (40001), and later by a router on the old mapping too; never stranded', async () => {
    const from = await route();
    const to = [...servers.keys()].find((s) => s !== from)!;
    const lock = new pg.Client({ connectionString: stage.config.catalog });
    await lock.connect();
    await lock.query('BEGIN');
    await lock.query('SELECT * FROM shardctl.strategy FOR UPDATE');
    const run = runLogged(stage.configPath, ['mapping', 'set', cell, to, '--apply']);
    let refused: string[] = [];
    try {
      for (let i = 0; ; i++) {
        const r = await lock.query(`SELECT count(*)::int AS n FROM pg_locks WHERE NOT granted AND pid <> pg_backend_pid()`);
        if (r.rows[0].n > 0) break;
        assert.ok(i < 1200, 'the run reached its topology record within 120 s');
        await sleep(100);
      }
      refused = await write(await route());
    } finally {
      await lock.query('COMMIT');
      await lock.end();
    }
    const r = await run;
    assert.equal(r.status, 0, r.out);
    assert.deepEqual(await stranded(), [], 'right after the run');
    const coming = new RegExp(`unit ${cell} belongs on shard ${to} under the coming topology, not on shard ${from}`);
    assert.equal(refused.length, 2, refused.join('; '));
    for (const m of refused) assert.match(m, coming);
    // a router still on the old mapping writes the cell on its old shard: refused, naming the new one
    const late = await write(from);
    assert.equal(late.length, 2, late.join('; '));
    for (const m of late) assert.match(m, new RegExp(`unit ${cell} belongs on shard ${to} under the recorded topology`));
    assert.equal(await route(), to);
    assert.deepEqual(await write(to), [], 'the retry through the catalog route lands on its home');
    assert.deepEqual(await stranded(), []);
  });
});
