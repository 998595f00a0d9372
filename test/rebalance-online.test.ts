import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { loadConfig } from '../src/config/load.js';
import type { Config } from '../src/config/types.js';
import type { Stage } from '../harness/demo/stage.js';
import { stageMigrated } from './helpers/stage.js';
import { topologyRouter } from '../src/routing/router.js';
import type { MovePoint } from '../src/rebalance/journal.js';
import { runCli, runCliAsync, watchCli, runCliKilledAtAsync } from './helpers/cli.js';
import { sql } from './helpers/fleet.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const placedOn = async (c: Config, unit: string) => (await sql(c.catalog, 'SELECT shard FROM shardctl.placements WHERE unit = $1', [unit]))[0]?.shard as string;
const slotsLeft = async (c: Config) => {
  const out: string[] = [];
  for (const s of c.shards) for (const r of await sql(s.primary, 'SELECT slot_name FROM pg_replication_slots')) out.push(`${s.id}: ${r.slot_name}`);
  for (const s of c.shards) for (const r of await sql(s.primary, 'SELECT pubname FROM pg_publication')) out.push(`${s.id}: publication ${r.pubname}`);
  return out;
};

/**
 * An application writing to one tenant's themes on the shard it believes holds the tenant: inserts,
 * renames and deletes, each retried while the fence refuses it, following the tombstone's "has moved
 * to shard X" to the new shard. Every committed write is mirrored to the monolith, so `verify`
 * (monolith against the shards) proves every committed write is on the shards exactly once.
 */
function startWriter(config: Config, tenant: string, first: string) {
  const clients = new Map<string, pg.Client>();
  const client = async (shard: string) => {
    let c = clients.get(shard);
    if (!c) {
      c = new pg.Client({ connectionString: config.shards.find((s) => s.id === shard)!.primary });
      await c.connect();
      clients.set(shard, c);
    }
    return c;
  };
  const mono = new pg.Client({ connectionString: config.source });
  const st = { shard: first, commits: [] as number[], refused: 0, stop: false, own: [] as string[] };
  const done = (async () => {
    await mono.connect();
    for (let i = 0; !st.stop; i++) {
      const op = i % 6 === 4 && st.own.length ? 'rename' : i % 6 === 5 && st.own.length > 3 ? 'delete' : 'insert';
      try {
        const c = await client(st.shard);
        if (op === 'insert') {
          const r = await c.query(
            `INSERT INTO themes (restaurant_id, name, is_default, colors, font, updated_at) VALUES ($1, $2, false, '{"w": 1}', 'f', now()) RETURNING row_to_json(themes.*) AS j, id::text`,
            [tenant, `w${i}`],
          );
          st.commits.push(Date.now());
          st.own.push(r.rows[0].id);
          await mono.query('INSERT INTO themes SELECT * FROM json_populate_record(NULL::themes, $1)', [r.rows[0].j]);
        } else if (op === 'rename') {
          const id = st.own[i % st.own.length]!;
          await c.query(`UPDATE themes SET name = $2 WHERE id = $1`, [id, `r${i}`]);
          st.commits.push(Date.now());
          await mono.query(`UPDATE themes SET name = $2 WHERE id = $1`, [id, `r${i}`]);
        } else {
          const id = st.own[0]!;
          await c.query(`DELETE FROM themes WHERE id = $1`, [id]);
          st.own.shift();
          st.commits.push(Date.now());
          await mono.query(`DELETE FROM themes WHERE id = $1`, [id]);
        }
      } catch (e) {
        const moved = /has moved to shard (\S+) /.exec((e as Error).message);
        if (moved) st.shard = moved[1]!;
        else if (!/is being moved|could not serialize/.test((e as Error).message)) throw e;
        st.refused++;
        await sleep(10);
      }
      await sleep(3);
    }
  })();
  return {
    st,
    async stop() {
      st.stop = true;
      try {
        await done;
      } finally {
        await Promise.all([...clients.values(), mono].map((c) => c.end().catch(() => undefined)));
      }
    },
    /** the longest gap between two successful commits within [from, to] */
    longestGap(from: number, to: number) {
      const inside = st.commits.filter((t) => t >= from && t <= to);
      let gap = 0;
      for (let k = 1; k < inside.length; k++) gap = Math.max(gap, inside[k]! - inside[k - 1]!);
      return gap;
    },
  };
}

describe('rebalance: online moves under a writer (POS fixture)', () => {
  let stage: Stage;
  let cfg: string;
  before(async () => {
    // 15 restaurants, at least three on each shard: the tenants moved here (3, 7, 9, 11–15) and a unit
    // beside each; its verify runs read all of them
    stage = await stageMigrated({ kind: 'pos', shards: 3, scale: 0.015 });
    cfg = stage.configPath;
  });
  after(() => stage?.stop());

  it('the hot tenant moves online: its writer commits during the copy, every committed row ends on the new shard exactly', async (t) => {
    const c = loadConfig(cfg);
    const tenant = '3'; // the fixture's hot tenant
    const from = topologyRouter(c).shardFor(tenant);
    const to = c.shards.map((s) => s.id).find((s) => s !== from)!;
    const w = startWriter(c, tenant, from);
    await sleep(300);
    const at = new Map<string, number>();
    const events: { type: string; [k: string]: unknown }[] = [];
    const started = Date.now();
    const r = await watchCli(['pin', tenant, to, '--apply', '--json', '--config', cfg], (e) => {
      events.push(e);
      if (e.type === 'step') at.set(e.step as string, w.st.commits.length);
    });
    const ended = Date.now();
    await sleep(300);
    await w.stop();
    assert.equal(r.status, 0, r.stderr);
    const moved = events.find((e) => e.type === 'moved')!;
    assert.equal(moved.online, true);
    assert.equal(typeof moved.outageSeconds, 'number');
    assert.ok((moved.catchUpChanges as number) > 0, 'writes made after the copy snapshot reached the new shard through the stream');
    assert.ok(at.get('caught-up')! > at.get('target-fenced')!, 'the writer committed while the unit was being copied and streamed (impossible offline)');
    assert.equal(typeof JSON.parse(r.stdout).moves[0].outageSeconds, 'number', '--json reports the outage per unit');
    assert.equal(w.st.shard, to, 'the writer followed the tombstone to the new shard');
    t.diagnostic(`longest gap between the writer's commits during the move: ${w.longestGap(started, ended)} ms; reported outage ${Number(moved.outageSeconds).toFixed(2)} s; ${w.st.commits.length} commits, ${w.st.refused} refusals`);
    assert.equal(await placedOn(c, tenant), to);
    assert.deepEqual(await sql(c.shards.find((s) => s.id === from)!.primary, 'SELECT count(*)::int AS n FROM themes WHERE restaurant_id = $1', [tenant]), [{ n: 0 }]);
    const v = await runCliAsync(['verify', '--config', cfg]);
    assert.equal(v.status, 0, v.stdout + v.stderr);
    assert.deepEqual(await slotsLeft(c), []);
  });

  it('the stream applies only the moving unit: a key another unit uses on the new shard is left alone; via rows follow their parent', async () => {
    const c = loadConfig(cfg);
    const tenant = '9';
    const from = await placedOn(c, tenant);
    const to = c.shards.map((s) => s.id).find((s) => s !== from)!;
    const url = (id: string) => c.shards.find((s) => s.id === id)!.primary;
    const unitOn = async (shard: string) => (await sql(c.catalog, 'SELECT unit FROM shardctl.placements WHERE shard = $1 AND unit <> $2 LIMIT 1', [shard, tenant]))[0].unit as string;
    const [otherOnFrom, otherOnTo] = [await unitOn(from), await unitOn(to)];
    // stop after the copy: the new shard holds the unit as of the slot, the old one still takes its writes
    const killed = await runCliKilledAtAsync('streaming', ['pin', tenant, to, '--apply', '--config', cfg]);
    assert.equal(killed.status, null, killed.stderr);
    const theme = `INSERT INTO themes (id, restaurant_id, name, is_default, colors, font, updated_at) VALUES ($1, $2, 'same key', false, '{}', 'f', now()) RETURNING row_to_json(themes.*) AS j`;
    const id = 9_000_000_001;
    const kept = (await sql(url(to), theme, [id, otherOnTo]))[0].j; // another unit's row on the new shard
    await sql(c.source, 'INSERT INTO themes SELECT * FROM json_populate_record(NULL::themes, $1)', [kept]);
    await sql(url(from), theme, [id, otherOnFrom]); // the same key for a unit of the old shard, streamed…
    await sql(url(from), `UPDATE themes SET name = 'renamed' WHERE id = $1`, [id]);
    await sql(url(from), 'DELETE FROM themes WHERE id = $1', [id]); // …and gone again: nothing to apply
    // an order of the moving unit with an item (a via row), written on the old shard after the copy
    const order = (
      await sql(
        url(from),
        `INSERT INTO orders (restaurant_id, user_id, order_number, status, channel, currency_code, subtotal, tax, total, guests, notes, placed_at, business_date, public_id)
         VALUES ($1, NULL, 77, 'open', 'app', 'USD', 10.50, 1.05, 11.55, 2, 'after the copy', now(), current_date, gen_random_uuid()) RETURNING row_to_json(orders.*) AS j, id::text`,
        [tenant],
      )
    )[0];
    const product = (await sql(url(from), 'SELECT id::text FROM products WHERE restaurant_id = $1 LIMIT 1', [tenant]))[0].id;
    const item = (
      await sql(url(from), `INSERT INTO order_items (order_id, product_id, quantity, unit_price, line_total, voided, note) VALUES ($1, $2, 1, 5.25, 5.25, false, 'via') RETURNING row_to_json(order_items.*) AS j`, [order.id, product])
    )[0].j;
    await sql(c.source, 'INSERT INTO orders SELECT * FROM json_populate_record(NULL::orders, $1)', [order.j]);
    await sql(c.source, 'INSERT INTO order_items SELECT * FROM json_populate_record(NULL::order_items, $1)', [item]);
    const rerun = await runCliAsync(['rebalance', '--apply', '--config', cfg]);
    assert.equal(rerun.status, 0, rerun.stdout + rerun.stderr);
    assert.deepEqual(await sql(url(to), 'SELECT restaurant_id::text AS r, name FROM themes WHERE id = $1', [id]), [{ r: otherOnTo, name: 'same key' }], 'the other unit\'s row with that key is untouched');
    assert.equal((await sql(url(to), `SELECT count(*)::int AS n FROM order_items WHERE order_id = $1 AND note = 'via'`, [order.id]))[0].n, 1);
    const v = await runCliAsync(['verify', '--config', cfg]);
    assert.equal(v.status, 0, v.stdout + v.stderr);
  });

  it('an old shard without a free slot is refused with the reason and --offline named (exit 3); --offline moves it', async () => {
    const c = loadConfig(cfg);
    const tenant = '7';
    const from = topologyRouter(c).shardFor(tenant);
    const to = c.shards.map((s) => s.id).find((s) => s !== from)!;
    const fromUrl = c.shards.find((s) => s.id === from)!.primary;
    // pretend the old shard has no free slot: fill them
    const fill = await sql(fromUrl, `SELECT current_setting('max_replication_slots')::int - (SELECT count(*) FROM pg_replication_slots)::int AS n`);
    const fillers = [...Array(fill[0].n).keys()].map((i) => `filler_${i}`);
    for (const f of fillers) await sql(fromUrl, `SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [f]);
    try {
      const r = runCli(['pin', tenant, to, '--apply', '--config', cfg]);
      assert.equal(r.status, 3, r.stdout + r.stderr);
      assert.match(r.stderr, new RegExp(`shard ${from}: .* replication slots are in use, an online move needs 1 more`));
      assert.match(r.stderr, /--offline/);
    } finally {
      for (const f of fillers) await sql(fromUrl, 'SELECT pg_drop_replication_slot($1)', [f]);
    }
    const r = runCli(['rebalance', '--apply', '--offline', '--json', '--config', cfg]);
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.moves[0].online, false);
    assert.equal(typeof out.moves[0].outageSeconds, 'number');
    assert.equal(await placedOn(c, tenant), to);
  });

  it('SIGKILL at points across an online move, under the writer: each rerun completes it, exact, no slot left', async (t) => {
    // before the copy is journaled (undone, moved afresh), mid-stream (resumed), source fenced, opened, and a random moment
    const points: (MovePoint | 'random')[] = ['copy', 'stream', 'source-fencing', 'opened', 'random'];
    const c = loadConfig(cfg);
    const writers: ReturnType<typeof startWriter>[] = [];
    try {
      for (const [k, point] of points.entries()) {
        const tenant = String(11 + k);
        const from = await placedOn(c, tenant);
        const to = c.shards.map((s) => s.id).find((s) => s !== from)!;
        const w = startWriter(c, tenant, from);
        writers.push(w);
        await sleep(100);
        let killed;
        if (point === 'random') {
          const delay = 50 + Math.floor(Math.random() * 400);
          let armed = false;
          killed = await watchCli(['pin', tenant, to, '--apply', '--json', '--config', cfg], (e, child) => {
            if (e.type === 'step' && !armed) {
              armed = true;
              setTimeout(() => child.kill('SIGKILL'), delay);
            }
          });
          t.diagnostic(`random: killed ${delay} ms after the first step (status ${killed.status})`);
        } else {
          killed = await runCliKilledAtAsync(point, ['pin', tenant, to, '--apply', '--config', cfg]);
          assert.equal(killed.status, null, `killed at ${point}: ${killed.stderr}`);
        }
        const rerun = await runCliAsync(['rebalance', '--apply', '--config', cfg]);
        assert.equal(rerun.status, 0, `after ${point}: ${rerun.stdout}${rerun.stderr}`);
        assert.equal(await placedOn(c, tenant), to, `after ${point}`);
        assert.deepEqual(await sql(c.catalog, 'SELECT unit, step FROM shardctl.moves'), [], `after ${point}: the journal is empty`);
        assert.deepEqual(await slotsLeft(c), [], `after ${point}: no slot or publication left`);
        await sleep(100);
        await w.stop();
        assert.equal(w.st.shard, to, `after ${point}: the writer ends on the new shard`);
        assert.ok(w.st.commits.length > 0);
      }
    } finally {
      await Promise.all(writers.map((w) => w.stop().catch(() => undefined)));
    }
    const v = await runCliAsync(['verify', '--config', cfg]);
    assert.equal(v.status, 0, v.stdout + v.stderr);
  });
});
