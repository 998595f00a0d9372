import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { loadConfig } from '../src/config/load.js';
import { createRouter } from '../src/index.js';
import { stageFleet, type Stage } from '../harness/demo/stage.js';
import { migrate } from '../src/migrate/index.js';
import { sql } from './helpers/fleet.js';
import { jumpHashReference } from './helpers/jump-reference.js';
import { runLogged } from './helpers/route-oracle.js';

/**
 * Issue #24, the last hole: a tenant CREATED while a topology change is recorded (after the run's
 * scan for units without a placement, before its catalog commit), or later by a router still on the
 * old topology, must never be stranded (rows on a shard its catalog route does not name). The test
 * freezes each run at the seam by holding the catalog's strategy row (every topology record updates
 * it), creates tenants through the old route meanwhile, and checks with its own oracle: every
 * tenant's rows on all servers against the catalog route it computes itself (held route, pin, else
 * md5 → jump over the catalog's shards). Moves are --offline (pgbench_history has no primary key).
 */
const TABLES = ['pgbench_branches', 'pgbench_tellers', 'pgbench_accounts', 'pgbench_history'];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const key64 = (t: string) => createHash('md5').update(t, 'utf8').digest().readBigUInt64BE(0);

describe('a tenant created during a topology change is never stranded (pgbench fixture, jump)', () => {
  let stage: Stage;
  let cfg: string;
  const servers = new Map<string, string>();
  const route = async (bid: number) => (await sql(stage.config.catalog, 'SELECT shardctl.shard_for_key($1) AS s', [String(bid)]))[0].s as string;

  /** an application creating a branch with two accounts on `shard` (default: where the catalog routes it); false when refused with 40001 */
  const createTenant = async (bid: number, shard?: string): Promise<{ on: string; refused?: string }> => {
    const on = shard ?? (await route(bid));
    const c = new pg.Client({ connectionString: servers.get(on)! });
    await c.connect();
    try {
      await c.query('BEGIN');
      await c.query('INSERT INTO pgbench_branches (bid, bbalance) VALUES ($1, 0)', [bid]);
      await c.query(`INSERT INTO pgbench_accounts (aid, bid, abalance, filler) VALUES ($1, $2, 0, ''), ($1 + 1, $2, 0, '')`, [bid * 1000, bid]);
      await c.query('COMMIT');
      return { on };
    } catch (e) {
      await c.query('ROLLBACK').catch(() => undefined);
      if ((e as { code?: string }).code !== '40001') throw e;
      return { on, refused: (e as Error).message };
    } finally {
      await c.end();
    }
  };

  /** The oracle: every tenant with rows anywhere lives on exactly the shard its catalog route names. */
  const stranded = async (): Promise<string[]> => {
    const cat = stage.config.catalog;
    const ids = (await sql(cat, 'SELECT id FROM shardctl.shards ORDER BY position')).map((r) => r.id as string);
    const pins = new Map((await sql(cat, 'SELECT tenant, shard FROM shardctl.pins')).map((r) => [r.tenant as string, r.shard as string]));
    const held = new Map((await sql(cat, 'SELECT unit, shard FROM shardctl.held_routes')).map((r) => [r.unit as string, r.shard as string]));
    const routeOf = (t: string) => held.get(t) ?? pins.get(t) ?? ids[jumpHashReference(key64(t), ids.length)]!;
    const on = new Map<string, string[]>();
    for (const [id, url] of servers) {
      const q = `SELECT DISTINCT bid::text AS t FROM (${TABLES.map((t) => `SELECT bid FROM ${t}`).join(' UNION ALL ')}) x`;
      const rows = await sql(url, q).catch((e) => (e.code === '42P01' ? [] : Promise.reject(e)));
      for (const r of rows) (on.get(r.t) ?? on.set(r.t, []).get(r.t)!).push(id);
    }
    const out: string[] = [];
    for (const [t, shards] of on) if (shards.length !== 1 || shards[0] !== routeOf(t)) out.push(`tenant ${t}: rows on ${shards.join(', ')}, catalog route ${routeOf(t)}`);
    return out;
  };

  /**
   * Holds the catalog's strategy row until released: a run recording a topology waits there, after
   * its scans. Resolves once a run waits for it.
   */
  const freeze = async (run?: Promise<{ status: number | null; out: string }>) => {
    let ended: string | undefined;
    void run?.then((r) => (ended = `the run ended first (exit ${r.status}): ${r.out}`));
    const c = new pg.Client({ connectionString: stage.config.catalog });
    await c.connect();
    await c.query('BEGIN');
    await c.query('SELECT * FROM shardctl.strategy FOR UPDATE');
    return {
      waiting: async () => {
        for (let i = 0; i < 1200; i++) {
          const r = await c.query(`SELECT count(*)::int AS n FROM pg_locks WHERE NOT granted AND pid <> pg_backend_pid()`);
          if (r.rows[0].n > 0) return;
          if (ended) throw new Error(ended);
          await sleep(100);
        }
        throw new Error('no run reached the topology record within 120 s');
      },
      release: async () => {
        await c.query('COMMIT');
        await c.end();
      },
    };
  };

  type Frozen = Awaited<ReturnType<typeof freeze>>;
  /** Lets the run waiting on `lock` record, then holds the row again until its next record waits. */
  const holdNext = async (lock: Frozen, run: Promise<{ status: number | null; out: string }>): Promise<Frozen> => {
    const next = freeze(run); // queues behind the run's record, then holds the row again
    await sleep(200);
    await lock.release();
    const again = await next;
    await again.waiting();
    return again;
  };

  before(async () => {
    stage = await stageFleet({ kind: 'pgbench', shards: 3, scale: 0.2 });
    cfg = stage.configPath;
    for (const s of stage.config.shards) servers.set(s.id, s.primary);
    assert.equal((await migrate(stage.config)).ok, true);
  });
  after(async () => {
    await stage?.stop();
  });

  it('add-shard --apply frozen between its scans and its commit: a tenant created through the old route is refused (40001) until the new route names its home, never stranded', async () => {
    const born = [...Array(300).keys()].map((i) => 5000 + i);
    const moving = born.find((b) => jumpHashReference(key64(String(b)), 4) === 3)!;
    const staying = born.find((b) => jumpHashReference(key64(String(b)), 4) !== 3)!;
    const fourth = await stage.fleet.addShard();
    servers.set('s3', fourth.primary.url());
    const lock = await freeze();
    let a: Awaited<ReturnType<typeof createTenant>> | undefined;
    let b: Awaited<ReturnType<typeof createTenant>> | undefined;
    let again: Frozen | undefined;
    const run = runLogged(cfg, ['add-shard', '--id', 's3', '--primary', fourth.primary.url(), '--apply', '--offline']);
    try {
      await lock.waiting();
      a = await createTenant(moving);
      b = await createTenant(staying);
      // add-shard committed its topology; hold the rebalance it goes on with at its own record, and look
      again = await holdNext(lock, run);
      assert.deepEqual(await stranded(), [], 'add-shard recorded, its rebalance not yet');
    } finally {
      await (again ?? lock).release();
    }
    const r = await run;
    assert.equal(r.status, 0, r.out);
    assert.deepEqual(await stranded(), [], 'right after the run');
    assert.equal(b!.refused, undefined, 'a tenant whose home does not change is taken meanwhile');
    assert.match(a!.refused ?? '', new RegExp(`unit ${moving} belongs on shard s3 under the coming topology`), 'the moving-home tenant is refused while the change is recorded');
    assert.equal(await route(moving), 's3');
    assert.deepEqual(await createTenant(moving), { on: 's3' }, 'the retry through the catalog route lands on its home');
    assert.deepEqual(await stranded(), []);
  });

  it('a router built from the old config creates a tenant after the change: refused with 40001 naming its home, never stranded', async () => {
    const old = createRouter({ ...loadConfig(cfg), shards: loadConfig(cfg).shards.filter((s) => s.id !== 's3') });
    const bid = [...Array(300).keys()].map((i) => 6000 + i).find((b) => jumpHashReference(key64(String(b)), 4) === 3)!;
    const r = await createTenant(bid, old.shardFor(bid));
    assert.deepEqual(await stranded(), [], 'right after the write');
    assert.match(r.refused ?? '', new RegExp(`unit ${bid} belongs on shard s3 under the recorded topology, not on shard ${old.shardFor(bid)}`));
    assert.deepEqual(await createTenant(bid), { on: 's3' });
    assert.deepEqual(await stranded(), []);
  });

  it('remove-shard --apply frozen at its final record: a tenant created through the old route on the leaving shard is refused, never stranded', async () => {
    const lock = await freeze();
    const run = runLogged(cfg, ['remove-shard', 's3', '--apply', '--offline']);
    let again: Frozen | undefined;
    let created: Awaited<ReturnType<typeof createTenant>> | undefined;
    const bid = [...Array(300).keys()].map((i) => 7000 + i).find((b) => jumpHashReference(key64(String(b)), 4) === 3)!;
    try {
      // the drain's own record (its pins) first: let it pass, then hold the final one (the shard leaving)
      await lock.waiting();
      again = await holdNext(lock, run);
      created = await createTenant(bid);
    } finally {
      await again?.release();
    }
    const r = await run;
    assert.equal(r.status, 0, r.out);
    assert.deepEqual(await stranded(), [], 'right after the run');
    assert.equal(created!.on, 's3', 'the old route named the leaving shard');
    assert.match(created!.refused ?? '', new RegExp(`unit ${bid} belongs on shard s\\d under the coming topology, not on shard s3`));
    assert.deepEqual(loadConfig(cfg).shards.map((s) => s.id), ['s0', 's1', 's2']);
    assert.equal((await createTenant(bid)).refused, undefined);
    assert.deepEqual(await stranded(), []);
  });
});
