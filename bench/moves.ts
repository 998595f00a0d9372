import pg from 'pg';
import type { Config } from '../src/config/types.js';
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
}

export async function runMoves(config: Config, log: (s: string) => void): Promise<MoveFigures> {
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
  return { tenant: top.unit, share: Number(top.rows) / total, rows: Number(top.rows), online, offline };
}

async function oneMove(config: Config, tenant: string, from: string, to: string, offline: boolean): Promise<OneMove> {
  const next = editConfigFile(config.file, setPin(tenant, to));
  const w = writer(config, tenant, from);
  await sleep(500);
  const t0 = performance.now();
  const started = Date.now();
  let outageS: number | undefined;
  const r = await rebalance(next, { apply: true, offline, onEvent: (e) => e.type === 'moved' && (outageS = e.outageSeconds) });
  const seconds = (performance.now() - t0) / 1000;
  const ended = Date.now();
  await sleep(500);
  const commits = await w.stop();
  if (!r.ok || outageS === undefined) throw new Error(`the ${offline ? 'offline' : 'online'} move of tenant ${tenant} did not complete: ${r.moves.map((m) => m.reason).join('; ')}`);
  const inside = commits.filter((t) => t >= started && t <= ended + 500);
  let gap = 0;
  for (let k = 1; k < inside.length; k++) gap = Math.max(gap, inside[k]! - inside[k - 1]!);
  return { from, to, seconds, outageS, longestGapS: gap / 1000, commits: inside.length };
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
