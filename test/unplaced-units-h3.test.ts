import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { cellToCenterChild, cellToLatLng, cellToParent, latLngToCell } from 'h3-js';
import type { Stage } from '../harness/demo/stage.js';
import { stageMigrated } from './helpers/stage.js';
import { sql } from './helpers/fleet.js';
import { runLogged, sampleRoutes } from './helpers/route-oracle.js';

/**
 * Issue #24 follow-up, h3: a cell no row was in at migrate (so neither placed nor mapped) gets rows
 * from an application routing through shard_for_cell: a chat room (a cell column) and a location (a
 * lat/lng pair, grouped through computed cells). `mapping set <cell> --apply` must keep its route on
 * its rows until its move flips, then hold them exactly once on the mapped shard.
 */
const ROUTE_SQL = 'SELECT u AS unit, shardctl.shard_for_cell(u) AS shard FROM unnest($1::text[]) AS u';

describe('a cell born on the shards after migrate (h3, location fixture)', () => {
  let stage: Stage;
  let cfg: string;
  const servers = new Map<string, string>();
  // the middle of the Pacific: no metro of the fixture is near it
  const cell = latLngToCell(0, -150, 3);
  const index = BigInt(`0x${cellToCenterChild(cell, 12)}`).toString();
  const [lat, lng] = cellToLatLng(cellToCenterChild(cell, 12));
  const route = async () => (await sql(stage.config.catalog, 'SELECT shardctl.shard_for_cell($1::bigint) AS s', [index]))[0].s as string;
  /** shard → the cell's rows there, the test's own SQL */
  const rowsOn = async () => {
    const out = new Map<string, number>();
    for (const [id, url] of servers) {
      const r = await sql(url, `SELECT (SELECT count(*) FROM chat_rooms WHERE h3_cell = $1) + (SELECT count(*) FROM locations WHERE latitude = $2 AND longitude = $3) AS n`, [index, lat, lng]);
      if (Number(r[0].n) > 0) out.set(id, Number(r[0].n));
    }
    return out;
  };

  before(async () => {
    stage = await stageMigrated({ kind: 'location', shards: 3, scale: 0.002 });
    cfg = stage.configPath;
    for (const s of stage.config.shards) servers.set(s.id, s.primary);
  });
  after(async () => {
    await stage?.stop();
  });

  it('mapping set --apply moves the unplaced cell with its route; its rows end once on the mapped shard', async () => {
    assert.equal((await sql(stage.config.catalog, 'SELECT count(*)::int AS n FROM shardctl.placements WHERE unit = $1', [cell]))[0].n, 0, 'the cell is not placed');
    const from = await route();
    const url = servers.get(from)!;
    await sql(url, `INSERT INTO chat_rooms (h3_cell, name, created_by, is_public, member_ids, created_at) VALUES ($1, 'born', 1, true, '{}', now())`, [index]);
    await sql(url, `INSERT INTO locations (profile_id, latitude, longitude, accuracy_m, source, recorded_at) VALUES (1, $1, $2, 5, 'gps', now())`, [lat, lng]);
    const to = [...servers.keys()].find((s) => s !== from)!;
    const s = sampleRoutes(stage.config.catalog, () => servers, ROUTE_SQL, 'SELECT h3_cell::text AS u FROM chat_rooms', (u) => cellToParent(BigInt(u).toString(16), 3));
    const r = await runLogged(cfg, ['mapping', 'set', cell, to, '--apply']);
    const sampled = await s.stop();
    assert.equal(r.status, 0, r.out);
    assert.deepEqual(sampled.problems, [], `${sampled.samples} samples`);
    assert.ok(sampled.samples >= 1, `${sampled.samples} samples checked`);
    assert.deepEqual([...(await rowsOn())], [[to, 2]], `the cell's two rows exactly once, on ${to}`);
    assert.equal(await route(), to);
    assert.equal((await sql(stage.config.catalog, 'SELECT shard FROM shardctl.placements WHERE unit = $1', [cell]))[0]?.shard, to);
  });
});
