import os from 'node:os';
import pg from 'pg';
import type { Config } from '../src/index.js';
import { editConfigFile, rebalance, setPin } from '../src/index.js';

/**
 * The moves phase of `npm run bench` (issue #14): the write outage of moving the biggest tenant
 * (about a tenth of the data at the default scale) to another shard, online and then back offline,
 * while one application connection keeps writing to it on the shard it is placed on (retrying while
 * the fence refuses it, following the tombstone to the new shard). Runs on the shards the online
 * phase cut over to.
 */
export interface MoveFigures {
  tenant: string;
  /** the tenant's share of the sharded rows */
  share: number;
  rows: number;
  online: OneMove;
  offline: OneMove;
  /** issue 25: tenants grown to --moves-rows (and 10 ×), each moved online under the writer */
  sized: SizedMove[];
}

export interface SizedMove extends OneMove {
  tenant: string;
  rows: number;
  /** rows changed since the copy, proven while writes went on; rows compared inside the fence */
  provenRows?: number;
  checkedRows?: number;
  /** the 1-minute load average per core when the move ended: above 1 the machine counts as loaded */
  loadPerCore: number;
  /** the target: longest gap ≤ 1 s, ≤ 3 s on a loaded machine */
  pass: boolean;
}

export interface MovesOptions {
  /** the rows a tenant is grown to before its online move (0: none) */
  rows: number;
  /** also a tenant of 10 × rows */
  tenfold: boolean;
}

export interface OneMove {
  from: string;
  to: string;
  seconds: number;
  /** what rebalance reports: fencing the old shard → writable on the new one */
  outageS: number;
  /** the longest gap between two commits of the writer during the move */
  longestGapS: number;
  commits: number;
  /** online: rows changed since the copy, proven while writes went on; rows compared inside the fence */
  provenRows?: number;
  checkedRows?: number;
}

export async function runMoves(config: Config, log: (s: string) => void, opts: MovesOptions = { rows: 0, tenfold: false }): Promise<MoveFigures> {
  const placed = (await query(config.catalog, 'SELECT unit, shard, rows::bigint AS rows FROM shardctl.placements ORDER BY rows DESC')) as { unit: string; shard: string; rows: string }[];
  if (!placed.some((p) => Number(p.rows) > 0)) {
    // placements recorded without counts (a copy without checksums, a cutover): count on the shards
    const counts = new Map<string, number>();
    for (const sh of config.shards) {
      for (const t of ['orders', 'order_items o JOIN orders p ON p.id = o.order_id', 'analytics_events', 'themes', 'users', 'products', 'categories']) {
        const col = t.startsWith('order_items') ? 'p.restaurant_id' : 'restaurant_id';
        for (const r of (await query(sh.primary, `SELECT ${col}::text AS u, count(*)::bigint AS n FROM ${t} GROUP BY 1`)) as { u: string; n: string }[]) {
          counts.set(r.u, (counts.get(r.u) ?? 0) + Number(r.n));
        }
      }
    }
    for (const p of placed) p.rows = String(counts.get(p.unit) ?? 0);
    placed.sort((a, b) => Number(b.rows) - Number(a.rows));
  }
  const total = placed.reduce((n, p) => n + Number(p.rows), 0);
  const top = placed[0]!;
  const home = top.shard;
  const away = config.shards.map((s) => s.id).find((s) => s !== home)!;
  log(`moves: tenant ${top.unit}, ${top.rows} rows (${((100 * Number(top.rows)) / total).toFixed(1)}% of ${total}), ${home} → ${away} online, then back offline`);
  const online = await oneMove(config, top.unit, home, away, false);
  log(`moves: online ${online.seconds.toFixed(1)} s, writes refused ${online.outageS.toFixed(2)} s (longest gap between commits ${online.longestGapS.toFixed(2)} s)`);
  const offline = await oneMove(config, top.unit, away, home, true);
  log(`moves: offline ${offline.seconds.toFixed(1)} s, writes refused ${offline.outageS.toFixed(2)} s (longest gap between commits ${offline.longestGapS.toFixed(2)} s)`);
  const sized: SizedMove[] = [];
  const sizes = opts.rows > 0 ? (opts.tenfold ? [opts.rows, opts.rows * 10] : [opts.rows]) : [];
  for (const [i, rows] of sizes.entries()) {
    const p = placed[i + 1] ?? placed[0]!;
    sized.push(await sizedMove(config, p.unit, p.shard, rows, log));
  }
  return { tenant: top.unit, share: Number(top.rows) / total, rows: Number(top.rows), online, offline, sized };
}

/**
 * Issue 25's target: a tenant grown to `rows` (analytics_events inserted on its shard, as its
 * application would have) moved online under the writer; the longest gap between the writer's
 * commits must not grow with the tenant: ≤ 1 s, ≤ 3 s on a loaded machine.
 */
async function sizedMove(config: Config, tenant: string, home: string, rows: number, log: (s: string) => void): Promise<SizedMove> {
  const url = config.shards.find((s) => s.id === home)!.primary;
  const t0 = performance.now();
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(`SET shardctl.bypass = 'on'`); // a bulk load, not the application's writes: no fence check per row
    for (let left = rows; left > 0; left -= 1_000_000) {
      await c.query(
        `INSERT INTO analytics_events (restaurant_id, user_id, event_type, occurred_at, session_id, duration_ms, value, props, tag_ids)
         SELECT $1, NULL, 'bench', now(), gen_random_uuid(), i, i, '{}', '{}' FROM generate_series(1, $2::int) i`,
        [tenant, Math.min(left, 1_000_000)], // no user: its foreign key is not checked row by row
      );
    }
    await c.query('ANALYZE analytics_events');
  } finally {
    await c.end();
  }
  const away = config.shards.map((s) => s.id).find((s) => s !== home)!;
  log(`moves: tenant ${tenant} grown by ${rows} rows on ${home} in ${((performance.now() - t0) / 1000).toFixed(0)} s; moving it online to ${away} under the writer`);
  const m = await oneMove(config, tenant, home, away, false);
  const loadPerCore = os.loadavg()[0]! / os.cpus().length;
  const pass = m.longestGapS <= (loadPerCore > 1 ? 3 : 1);
  log(`moves: ${rows} more rows, online ${m.seconds.toFixed(1)} s, writes refused ${m.outageS.toFixed(2)} s, longest gap ${m.longestGapS.toFixed(2)} s (load ${loadPerCore.toFixed(1)}/core): ${pass ? 'PASS' : 'FAIL'}`);
  return { ...m, tenant, rows, loadPerCore, pass };
}

async function oneMove(config: Config, tenant: string, from: string, to: string, offline: boolean): Promise<OneMove> {
  const next = editConfigFile(config.file, setPin(tenant, to));
  const w = writer(config, tenant, from);
  await sleep(500);
  const t0 = performance.now();
  const started = Date.now();
  let outageS: number | undefined;
  let proof: Pick<OneMove, 'provenRows' | 'checkedRows'> = {};
  const r = await rebalance(next, {
    apply: true,
    offline,
    onEvent: (e) => {
      if (e.type !== 'moved') return;
      outageS = e.outageSeconds;
      proof = { provenRows: e.provenRows, checkedRows: e.checkedRows };
    },
  });
  const seconds = (performance.now() - t0) / 1000;
  const ended = Date.now();
  await sleep(500);
  const commits = await w.stop();
  if (!r.ok || outageS === undefined) throw new Error(`the ${offline ? 'offline' : 'online'} move of tenant ${tenant} did not complete: ${r.moves.map((m) => m.reason).join('; ')}`);
  const inside = commits.filter((t) => t >= started && t <= ended + 500);
  let gap = 0;
  for (let k = 1; k < inside.length; k++) gap = Math.max(gap, inside[k]! - inside[k - 1]!);
  return { from, to, seconds, outageS, longestGapS: gap / 1000, commits: inside.length, ...proof };
}

/** One connection inserting the tenant's themes, as an application would, on the shard it believes holds it. */
function writer(config: Config, tenant: string, first: string) {
  let stop = false;
  let shard = first;
  const commits: number[] = [];
  const clients = new Map<string, pg.Client>();
  const done = (async () => {
    while (!stop) {
      try {
        let c = clients.get(shard);
        if (!c) {
          c = new pg.Client({ connectionString: config.shards.find((s) => s.id === shard)!.primary });
          await c.connect();
          clients.set(shard, c);
        }
        await c.query(`INSERT INTO themes (restaurant_id, name, is_default, colors, font, updated_at) VALUES ($1, 'bench', false, '{}', 'f', now())`, [tenant]);
        commits.push(Date.now());
      } catch (e) {
        const moved = /has moved to shard (\S+) /.exec((e as Error).message);
        if (moved) shard = moved[1]!;
        else if (!/is being moved/.test((e as Error).message)) throw e;
      }
      await sleep(5);
    }
  })();
  return {
    async stop() {
      stop = true;
      try {
        await done;
      } finally {
        await Promise.all([...clients.values()].map((c) => c.end().catch(() => undefined)));
      }
      return commits;
    },
  };
}

async function query(url: string, text: string): Promise<unknown[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(text)).rows;
  } finally {
    await c.end();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
