import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { loadConfig } from '../src/config/load.js';
import { editConfigFile, removePin, setPin } from '../src/config/edit-file.js';
import { connect } from '../src/db/connect.js';
import type { Stage } from '../harness/demo/stage.js';
import { stageMigrated } from './helpers/stage.js';
import { ID_STRIDE } from '../src/sequences/align.js';
import { shardEndpoint } from '../src/db/endpoints.js';
import { LOCK_KEY } from '../src/catalog/catalog.js';
import { topologyRouter } from '../src/routing/router.js';
import { runCli, runCliAsync, runCliKilledAt } from './helpers/cli.js';
import { assertExact } from './helpers/exact.js';
import { sql } from './helpers/fleet.js';

/** A tenant on `shard` that has themes, not yet used by another case. */
const used = new Set<string>();
async function tenantOn(stage: Stage, shard: string): Promise<string> {
  const url = stage.config.shards.find((s) => s.id === shard)!.primary;
  const rows = await sql(url, 'SELECT DISTINCT restaurant_id::text AS t FROM themes ORDER BY 1');
  const t = rows.map((r) => r.t as string).find((x) => !used.has(x));
  assert.ok(t, `a tenant with themes left on ${shard}`);
  used.add(t);
  return t;
}

/** Any tenant on `shard` (for an application write that moves nothing). */
async function anyTenantOn(stage: Stage, shard: string): Promise<string> {
  const rows = await sql(stage.config.shards.find((s) => s.id === shard)!.primary, 'SELECT min(restaurant_id)::text AS t FROM themes');
  return rows[0].t;
}

const themeSql = `INSERT INTO themes (restaurant_id, name, is_default, colors, font, updated_at) VALUES ($1, 'app', false, '{}', 'f', now()) RETURNING id::text AS id`;
const urlOf = (stage: Stage, shard: string) => stage.config.shards.find((s) => s.id === shard)!.primary;
const fencesOf = (stage: Stage, shard: string, unit: string) => sql(urlOf(stage, shard), 'SELECT role FROM shardctl.fenced_units WHERE unit = $1', [unit]).catch(() => []);

describe('data safety (POS, 2 shards)', () => {
  let stage: Stage;
  let cfg: string;
  before(async () => {
    stage = await stageMigrated({ kind: 'pos', shards: 2, scale: 0.02 });
    cfg = stage.configPath;
  });
  after(() => stage?.stop());

  it('ids: each shard hands out ids of its own residue, past the monolith\'s, and a moved tenant never clashes', async () => {
    const srcMax = BigInt((await sql(stage.config.source, 'SELECT max(id)::text AS m FROM themes'))[0].m);
    const a = BigInt((await sql(urlOf(stage, 's0'), themeSql, [await anyTenantOn(stage, 's0')]))[0].id);
    const b = BigInt((await sql(urlOf(stage, 's1'), themeSql, [await anyTenantOn(stage, 's1')]))[0].id);
    assert.ok(a > srcMax && b > srcMax, `${a}, ${b} past the monolith's ${srcMax}`);
    assert.equal(a % BigInt(ID_STRIDE), 1n, 's0 (position 0) yields ids ≡ 1');
    assert.equal(b % BigInt(ID_STRIDE), 2n, 's1 (position 1) yields ids ≡ 2');
    // a tenant of s0 that wrote after cutover moves to s1, which keeps inserting: no clash
    const t = await tenantOn(stage, 's0');
    await sql(urlOf(stage, 's0'), themeSql, [t]);
    const pin = runCli(['pin', t, 's1', '--apply', '--config', cfg]);
    assert.equal(pin.status, 0, pin.stderr + pin.stdout);
    for (let i = 0; i < 3; i++) assert.equal(BigInt((await sql(urlOf(stage, 's1'), themeSql, [t]))[0].id) % BigInt(ID_STRIDE), 2n);
    // a rerun with nothing left to copy still puts a sequence that was reset back on the rule
    await sql(urlOf(stage, 's0'), `SELECT setval(pg_get_serial_sequence('themes', 'id'), 1)`);
    const rerun = runCli(['migrate', '--config', cfg]);
    assert.equal(rerun.status, 0, rerun.stderr + rerun.stdout);
    const c = BigInt((await sql(urlOf(stage, 's0'), themeSql, [await anyTenantOn(stage, 's0')]))[0].id);
    assert.ok(c > a && c % BigInt(ID_STRIDE) === 1n, `after the rerun s0 yields ${c}`);
  });

  it('rebalance refuses, and never deletes, rows the target took for the unit before the move', async () => {
    const t = await tenantOn(stage, 's0');
    editConfigFile(cfg, setPin(t, 's1')); // the topology is published, nothing moved
    // an application router already on the new topology writes the tenant's new row to s1 (the
    // fixture's foreign keys would refuse it there; many sharded schemas have none: switch them off)
    const s1 = new pg.Client({ connectionString: urlOf(stage, 's1') });
    await s1.connect();
    await s1.query('SET session_replication_role = replica');
    // the shard's route guard refuses it (40001, naming s0, where the catalog still routes the tenant) ...
    await assert.rejects(s1.query(themeSql, [t]), (e: { code?: string; message: string }) => e.code === '40001' && e.message.includes(`unit ${t} belongs on shard s0`));
    // ... a writer past the guard (a manual copy) still can: the move must refuse such rows, never delete them
    await s1.query('SET shardctl.bypass = on');
    const early = (await s1.query(themeSql, [t])).rows[0].id as string;
    await s1.end();
    const r = runCli(['rebalance', '--apply', '--config', cfg]);
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`shard s1 already holds rows of unit ${t} \\(public\\.themes: 1 row\\).*shardctl does not delete them.*the move was undone: unit ${t} stays on shard s0, writable there`));
    assert.deepEqual(await sql(urlOf(stage, 's1'), 'SELECT id::text FROM themes WHERE id = $1', [early]), [{ id: early }], 'the row is still there');
    assert.deepEqual(await fencesOf(stage, 's0', t), [], 'not fenced on s0');
    assert.deepEqual(await fencesOf(stage, 's1', t), []);
    assert.deepEqual(await sql(stage.config.catalog, 'SELECT unit FROM shardctl.moves'), []);
    await sql(urlOf(stage, 's0'), themeSql, [t]); // writable where it is placed
    // the operator moves the early row home; the next run moves the tenant
    await sql(urlOf(stage, 's1'), 'DELETE FROM themes WHERE id = $1', [early]);
    assert.equal(runCli(['rebalance', '--apply', '--config', cfg]).status, 0);
    assert.equal((await sql(stage.config.catalog, 'SELECT shard FROM shardctl.placements WHERE unit = $1', [t]))[0].shard, 's1');
  });

  it('a move that fails for any reason (here a primary-key clash during COPY) is undone and says so', async () => {
    const t = await tenantOn(stage, 's0');
    const other = await anyTenantOn(stage, 's1');
    const clash = (await sql(urlOf(stage, 's0'), 'SELECT min(id)::text AS id FROM themes WHERE restaurant_id = $1', [t]))[0].id;
    await sql(urlOf(stage, 's1'), `INSERT INTO themes (id, restaurant_id, name, is_default, colors, font, updated_at) VALUES ($1, $2, 'clash', false, '{}', 'f', now())`, [clash, other]);
    const r = runCli(['pin', t, 's1', '--apply', '--config', cfg]);
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`FAILED ${t} s0 → s1: .*duplicate key.*the move was undone: unit ${t} stays on shard s0, writable there`));
    assert.deepEqual(await fencesOf(stage, 's0', t), []);
    assert.deepEqual(await fencesOf(stage, 's1', t), []);
    await sql(urlOf(stage, 's0'), themeSql, [t]);
    await sql(urlOf(stage, 's1'), 'DELETE FROM themes WHERE id = $1', [clash]);
    assert.equal(runCli(['rebalance', '--apply', '--config', cfg]).status, 0);
  });

  it('SIGKILL after the fences are set but before the journal says so: a rerun leaves no stray fence, even after the pin is undone', async () => {
    const t = await tenantOn(stage, 's0');
    const killed = runCliKilledAt('fencing', ['pin', t, 's1', '--apply', '--offline', '--config', cfg]);
    assert.equal(killed.status, null, killed.stderr);
    assert.deepEqual(await fencesOf(stage, 's0', t), [{ role: 'source' }], 'the kill left the fence');
    assert.deepEqual(await sql(stage.config.catalog, 'SELECT step FROM shardctl.moves WHERE unit = $1', [t]), [{ step: 'started' }], 'and the journal knows it');
    editConfigFile(cfg, removePin(t));
    const rerun = runCli(['rebalance', '--apply', '--config', cfg]);
    assert.equal(rerun.status, 0, rerun.stderr + rerun.stdout);
    assert.deepEqual(await fencesOf(stage, 's0', t), []);
    assert.deepEqual(await fencesOf(stage, 's1', t), []);
    await sql(urlOf(stage, 's0'), themeSql, [t]);
  });

  it('a lost catalog lock stops the run with exit 3 before its next journaled step; a rerun completes', { timeout: 120_000 }, async () => {
    const t = await tenantOn(stage, 's0');
    // an application transaction on s0 makes the fence wait, long enough to cut the catalog connection
    const app = new pg.Client({ connectionString: urlOf(stage, 's0'), application_name: 'app' });
    await app.connect();
    await app.query('BEGIN');
    await app.query(themeSql, [await anyTenantOn(stage, 's0')]);
    const run = runCliAsync(['pin', t, 's1', '--apply', '--offline', '--config', cfg], { SHARDCTL_LOCK_TIMEOUT_MS: '2000', SHARDCTL_LOCK_ATTEMPTS: '20' });
    for (let i = 0; i < 200; i++) {
      const waiting = await sql(urlOf(stage, 's0'), `SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`);
      if (waiting.length) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const cut = await sql(
      stage.config.catalog,
      `SELECT pg_terminate_backend(pid) AS ok FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = $1`,
      [String(LOCK_KEY)],
    );
    assert.deepEqual(cut, [{ ok: true }]);
    await app.query('ROLLBACK');
    await app.end();
    const r = await run;
    assert.equal(r.status, 3, r.stdout + r.stderr);
    assert.match(r.stderr, /lost the catalog lock \(the catalog connection failed: .*\); stopped before the next journaled step/);
    // the wait was the move's fence, or before it the routing rule every shard takes with the topology
    // (fence/route-guard.ts): the move is journaled as started, or not at all
    const journaled = await sql(stage.config.catalog, 'SELECT step FROM shardctl.moves WHERE unit = $1', [t]);
    assert.ok(journaled.length === 0 || (journaled.length === 1 && journaled[0].step === 'started'), JSON.stringify(journaled));
    const rerun = runCli(['rebalance', '--apply', '--config', cfg]);
    assert.equal(rerun.status, 0, rerun.stderr + rerun.stdout);
    assert.deepEqual(await sql(stage.config.catalog, 'SELECT * FROM shardctl.moves'), []);
    assert.equal(topologyRouter(loadConfig(cfg)).shardFor(t), 's1');
  });

  it('every shardctl connection asks the server for TCP keepalives (a dead run frees its lock in minutes)', async () => {
    const c = await connect(shardEndpoint(stage.config, 's0'));
    try {
      const r = await c.query(`SELECT current_setting('tcp_keepalives_idle') AS idle, current_setting('tcp_keepalives_interval') AS intvl, current_setting('tcp_keepalives_count') AS n, inet_client_addr() IS NOT NULL AS tcp`);
      assert.deepEqual(r.rows[0], { idle: '30', intvl: '10', n: '6', tcp: true });
    } finally {
      await c.end();
    }
  });

  it('after all of it the fleet is exact', async () => {
    // the application's own writes are not on the source: drop them before comparing
    for (const s of stage.config.shards) await sql(s.primary, `DELETE FROM themes WHERE name = 'app'`);
    await assertExact(loadConfig(cfg));
  });
});
