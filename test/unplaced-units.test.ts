import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { jumpHash, tenantKey64 } from '../src/index.js';
import type { Stage } from '../harness/demo/stage.js';
import { stageMigrated } from './helpers/stage.js';
import { runCli } from './helpers/cli.js';
import { sql } from './helpers/fleet.js';
import { runLogged } from './helpers/route-oracle.js';

/**
 * Issue #24 follow-up: a tenant an application creates after `migrate` (written to the shard its
 * route names) has no placement. A topology change (add-shard, pin) must not send its route away
 * from its rows, and the rebalance must move it like any placed unit. The oracle is the test's own
 * SQL: the catalog's shard_for_key for the route, a count of the tenant's rows on every server.
 * Moves are --offline: pgbench_history has no primary key, which online moves refuse.
 */
const ACCOUNTS = 5;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('units born on the shards after migrate (pgbench fixture, jump)', () => {
  let stage: Stage;
  let cfg: string;
  const servers = new Map<string, string>();
  const route = async (bid: number) => (await sql(stage.config.catalog, 'SELECT shardctl.shard_for_key($1) AS s', [String(bid)]))[0].s as string;
  const version = async () => Number((await sql(stage.config.catalog, 'SELECT version FROM shardctl.topology_version'))[0].version);
  /** shard → the tenant's rows there (branch + accounts), every server of the fleet */
  const rowsOf = async (bid: number) => {
    const out = new Map<string, number>();
    for (const [id, url] of servers) {
      const q = 'SELECT (SELECT count(*) FROM pgbench_branches WHERE bid = $1) + (SELECT count(*) FROM pgbench_accounts WHERE bid = $1) AS n';
      // a new shard has no tables until add-shard creates them
      const r = await sql(url, q, [bid]).catch((e) => (e.code === '42P01' ? [{ n: 0 }] : Promise.reject(e)));
      if (Number(r[0].n) > 0) out.set(id, Number(r[0].n));
    }
    return out;
  };
  /** an application creating a branch: on the shard the catalog routes it to, plain SQL */
  const createTenant = async (bid: number, on?: string, bypass = false) => {
    const shard = on ?? (await route(bid));
    const c = new pg.Client({ connectionString: servers.get(shard)! });
    await c.connect();
    try {
      // bypass: a session past the shard's guard (shardctl's own, or a manual copy that sets it)
      if (bypass) await c.query('SET shardctl.bypass = on');
      await c.query(`INSERT INTO pgbench_branches (bid, bbalance) VALUES ($1, 0)`, [bid]);
      for (let i = 0; i < ACCOUNTS; i++) await c.query(`INSERT INTO pgbench_accounts (aid, bid, abalance, filler) VALUES ($1, $2, 0, '')`, [bid * 1000 + i, bid]);
    } finally {
      await c.end();
    }
    return shard;
  };
  /** samples, until stopped, that each tenant's catalog route names a server holding its rows */
  const sampleRoutes = (bids: number[]) => {
    const st = { stop: false, samples: 0, problems: [] as string[] };
    const loop = (async () => {
      while (!st.stop) {
        const v = await version();
        const routes = new Map(bids.map((b) => [b, '']));
        for (const b of bids) routes.set(b, await route(b));
        const holders = new Map(await Promise.all(bids.map(async (b) => [b, await rowsOf(b)] as const)));
        const moving = new Set((await sql(stage.config.catalog, 'SELECT unit FROM shardctl.moves')).map((r) => r.unit as string));
        if ((await version()) === v) {
          st.samples++;
          for (const b of bids) {
            const on = holders.get(b)!;
            if (on.size && !on.has(routes.get(b)!)) st.problems.push(`v${v}: tenant ${b} routes to ${routes.get(b)}, its rows are on ${[...on.keys()].join(', ')}`);
            if (on.size > 1 && !moving.has(String(b))) st.problems.push(`v${v}: tenant ${b} has rows on ${[...on.keys()].join(', ')} and no move in flight`);
          }
        }
        await sleep(100);
      }
    })();
    return async () => {
      st.stop = true;
      await loop;
      return st;
    };
  };
  const assertExactlyOn = async (bid: number, shard: string) => {
    assert.deepEqual([...(await rowsOf(bid))], [[shard, 1 + ACCOUNTS]], `tenant ${bid}: its rows exactly once, on ${shard}`);
    assert.equal(await route(bid), shard, `tenant ${bid} routes to ${shard}`);
  };

  before(async () => {
    stage = await stageMigrated({ kind: 'pgbench', shards: 3, scale: 0.5 });
    cfg = stage.configPath;
    for (const s of stage.config.shards) servers.set(s.id, s.primary);
  });
  after(async () => {
    await stage?.stop();
  });

  it('add-shard --apply: a tenant created after migrate keeps its route until its move flips, then lives on the new shard once', async () => {
    // new tenants: one the fourth shard takes, one it does not
    const born = [...Array(200).keys()].map((i) => 1000 + i);
    const moving = born.find((b) => jumpHash(tenantKey64(String(b)), 4) === 3)!;
    const staying = born.find((b) => jumpHash(tenantKey64(String(b)), 4) !== 3)!;
    const home = { moving: await createTenant(moving), staying: await createTenant(staying) };
    const seen = runCli(['verify', '--placement-only', '--config', cfg]);
    assert.equal(seen.status, 0, seen.stdout + seen.stderr);
    assert.match(seen.stdout + seen.stderr, new RegExp(`2 unit\\(s\\) on the shards have no placement in the catalog \\(created there after migrate\\): ${Math.min(moving, staying)}, ${Math.max(moving, staying)};`));
    const fourth = await stage.fleet.addShard();
    servers.set('s3', fourth.primary.url());
    const stop = sampleRoutes([moving, staying]);
    await sleep(300);
    const r = await runLogged(cfg, ['add-shard', '--id', 's3', '--primary', fourth.primary.url(), '--apply', '--offline']);
    await sleep(300);
    const sampled = await stop();
    assert.equal(r.status, 0, r.out);
    assert.deepEqual(sampled.problems, [], `${sampled.samples} samples`);
    assert.ok(sampled.samples >= 2, `${sampled.samples} samples checked`);
    await assertExactlyOn(moving, 's3');
    await assertExactlyOn(staying, home.staying);
    assert.notEqual(home.moving, 's3');
  });

  it('pin --apply: a tenant created after migrate moves to its pin, its route at its rows throughout', async () => {
    const bid = 2000;
    const from = await createTenant(bid);
    const to = [...servers.keys()].find((s) => s !== from)!;
    const stop = sampleRoutes([bid]);
    await sleep(300);
    const r = await runLogged(cfg, ['pin', String(bid), to, '--apply', '--offline']);
    await sleep(300);
    const sampled = await stop();
    assert.equal(r.status, 0, r.out);
    assert.deepEqual(sampled.problems, [], `${sampled.samples} samples`);
    await assertExactlyOn(bid, to);
  });

  it('a tenant found on two shards without a placement is refused by name (exit 3), and nothing is recorded', async () => {
    const bid = 3000;
    const first = await createTenant(bid);
    const second = [...servers.keys()].find((s) => s !== first)!;
    // a second live copy: the shard's route guard refuses an application's (40001, naming its home) ...
    await assert.rejects(createTenant(bid, second), (e: { code?: string; message: string }) => e.code === '40001' && e.message.includes(`unit ${bid} belongs on shard ${first}`));
    await createTenant(bid, second, true); // ... a half-done manual move past the guard still makes one
    const v = await version();
    const r = runCli(['rebalance', '--apply', '--offline', '--config', cfg]);
    assert.equal(r.status, 3, r.stdout + r.stderr);
    assert.match(r.stderr, new RegExp(`${bid}\\b.*(${first}.*${second}|${second}.*${first})`));
    assert.doesNotMatch(r.stderr, /at .*\.js:\d+/, 'no stack trace');
    assert.equal(await version(), v, 'the topology version did not move');
    assert.equal((await sql(stage.config.catalog, 'SELECT count(*)::int AS n FROM shardctl.placements WHERE unit = $1', [String(bid)]))[0].n, 0);
    const v1 = runCli(['verify', '--placement-only', '--config', cfg]);
    assert.equal(v1.status, 1, v1.stdout + v1.stderr);
    assert.match(v1.stdout, new RegExp(`DUPLICATED unit ${bid} is on 2 shards \\(it has no placement, routes to ${first}\\)`), v1.stdout);
    // the way out: remove the stray copy; the next run places it where its rows are
    await sql(servers.get(second)!, 'DELETE FROM pgbench_accounts WHERE bid = $1', [bid]);
    await sql(servers.get(second)!, 'DELETE FROM pgbench_branches WHERE bid = $1', [bid]);
    const ok = runCli(['rebalance', '--apply', '--offline', '--config', cfg]);
    assert.equal(ok.status, 0, ok.stdout + ok.stderr);
    assert.equal((await sql(stage.config.catalog, 'SELECT shard FROM shardctl.placements WHERE unit = $1', [String(bid)]))[0]?.shard, first);
  });
});
