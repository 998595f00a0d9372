import assert from 'node:assert/strict';
import pg from 'pg';
import { createRouter, type LiveRouter } from '../../src/index.js';
import { watchCli } from './cli.js';
import { sql } from './fleet.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The shards' servers by id (all that ever took part: a removed shard is still checked for leftovers). */
export type Servers = () => ReadonlyMap<string, string>;

export interface RouteSampler {
  /** stops sampling; returns how many samples were checked, how many were skipped (a flip during the sample) and every problem */
  stop(): Promise<{ samples: number; skipped: number; problems: string[] }>;
  /** checks one sample now (between samples of the loop) */
  once(): Promise<string[]>;
}

/**
 * The test's own oracle for "a route is where the unit's rows are": reads every placed unit's route
 * through the catalog's SQL function (`routeSql`, $1 the units as text[], returning (unit, shard)),
 * then, with its own SQL on every server, which servers hold rows of each unit (`holdersSql`,
 * returning one `u` per unit present). A sample during which the topology version changed (a flip)
 * is skipped. A unit with rows must route to a server holding them, and may be on two servers only
 * while the moves journal lists it (copy to purge).
 */
export function sampleRoutes(catalog: string, servers: Servers, routeSql: string, holdersSql: string, unitOf: (u: string) => string = (u) => u, everyMs = 150): RouteSampler {
  const st = { stop: false, samples: 0, skipped: 0, problems: [] as string[] };
  const once = async (): Promise<string[] | undefined> => {
    const version = async () => Number((await sql(catalog, 'SELECT version FROM shardctl.topology_version'))[0].version);
    const moving = async () => new Set((await sql(catalog, 'SELECT unit FROM shardctl.moves')).map((r) => r.unit as string));
    const v1 = await version();
    const before = await moving();
    const units = (await sql(catalog, 'SELECT unit FROM shardctl.placements')).map((r) => r.unit as string);
    const routes = new Map((await sql(catalog, routeSql, [units])).map((r) => [r.unit as string, r.shard as string]));
    const holders = new Map<string, Set<string>>();
    for (const [id, url] of servers()) {
      for (const r of await sql(url, holdersSql)) {
        const u = unitOf(r.u);
        (holders.get(u) ?? holders.set(u, new Set()).get(u)!).add(id);
      }
    }
    const after = await moving();
    if ((await version()) !== v1) return undefined;
    const out: string[] = [];
    for (const u of units) {
      const on = holders.get(u);
      if (!on) continue;
      const route = routes.get(u)!;
      if (!on.has(route)) out.push(`v${v1}: unit ${u} routes to ${route}, its rows are on ${[...on].join(', ')}`);
      if (on.size > 1 && !before.has(u) && !after.has(u)) out.push(`v${v1}: unit ${u} has rows on ${[...on].join(', ')} and no move in flight`);
    }
    return out;
  };
  const loop = (async () => {
    while (!st.stop) {
      const r = await once();
      if (r === undefined) st.skipped++;
      else {
        st.samples++;
        st.problems.push(...r);
      }
      await sleep(everyMs);
    }
  })();
  return {
    async stop() {
      st.stop = true;
      await loop;
      return { samples: st.samples, skipped: st.skipped, problems: st.problems };
    },
    async once() {
      for (;;) {
        const r = await once();
        if (r) return r;
      }
    },
  };
}

export interface RoutedWriter {
  /** acknowledged inserts: row id → the shard that acknowledged it */
  readonly acked: Map<string, string>;
  readonly commits: number[];
  readonly refusals: { at: number; message: string }[];
  /** errors that are not a fence's refusal */
  readonly errors: string[];
  stop(): Promise<void>;
  /** the longest time between two acknowledged commits within [from, to] (ms), counting from `from` and up to `to` */
  longestGap(from: number, to: number): number;
}

/**
 * An application writing one unit's rows, asking `route` for the shard before every write (a live
 * router, or the catalog's SQL function) and retrying every refusal. Its log is what the database
 * acknowledged, nothing else.
 */
export function startRoutedWriter(servers: Servers, route: () => Promise<string> | string, insert: { text: string; values: (i: number) => unknown[] }): RoutedWriter {
  const clients = new Map<string, pg.Client>();
  const client = async (shard: string) => {
    let c = clients.get(shard);
    if (!c) {
      const url = servers().get(shard);
      if (!url) throw new Error(`the route names ${shard}, which is no server of the fleet`);
      c = new pg.Client({ connectionString: url });
      await c.connect();
      clients.set(shard, c);
    }
    return c;
  };
  const w = { acked: new Map<string, string>(), commits: [] as number[], refusals: [] as { at: number; message: string }[], errors: [] as string[] };
  let stop = false;
  const done = (async () => {
    for (let i = 0; !stop; i++) {
      try {
        const shard = await route();
        const r = await (await client(shard)).query(insert.text, insert.values(i));
        w.commits.push(Date.now());
        w.acked.set(String(r.rows[0].id), shard);
      } catch (e) {
        const m = (e as Error).message;
        if (/is being moved|has moved to shard|could not serialize/.test(m)) w.refusals.push({ at: Date.now(), message: m });
        else w.errors.push(m);
        await sleep(10);
      }
      await sleep(5);
    }
  })();
  return {
    ...w,
    async stop() {
      stop = true;
      try {
        await done;
      } finally {
        await Promise.all([...clients.values()].map((c) => c.end().catch(() => undefined)));
      }
    },
    longestGap(from, to) {
      const inside = [from, ...w.commits.filter((t) => t > from && t < to), to];
      let gap = 0;
      for (let k = 1; k < inside.length; k++) gap = Math.max(gap, inside[k]! - inside[k - 1]!);
      return gap;
    },
  };
}

/** room for the router's reload and the writer's retry pause beyond the reported outage, on a loaded machine */
const SLACK_MS = 4000;

export interface RunLog {
  status: number | null;
  out: string;
  started: number;
  ended: number;
  events: { type: string; [k: string]: any }[];
  /** `${unit}:${step}` → when the step's event arrived */
  at: Map<string, number>;
}

/** Runs the CLI with --json progress and keeps its events with their arrival times. */
export async function runLogged(config: string, args: string[]): Promise<RunLog> {
  const events: RunLog['events'] = [];
  const at = new Map<string, number>();
  const started = Date.now();
  const r = await watchCli([...args, '--json', '--config', config], (e) => {
    events.push(e);
    if (e.type === 'step') at.set(`${e.unit}:${e.step}`, Date.now());
  });
  return { status: r.status, out: r.stdout + r.stderr, started, ended: Date.now(), events, at };
}

/**
 * The writer's longest gap between commits during the run is its own unit's move outage (plus
 * slack), and no write of it was refused before that move's copy had ended (the fence on its old
 * shard comes only for the final catch-up).
 */
export function assertOutageOnly(w: RoutedWriter, unit: string, run: RunLog): string {
  const moved = run.events.find((e) => e.type === 'moved' && e.unit === unit);
  assert.ok(moved, `unit ${unit} moved`);
  assert.equal(moved.online, true);
  const outageMs = Number(moved.outageSeconds) * 1000;
  const gap = w.longestGap(run.started, run.ended);
  assert.ok(gap <= outageMs + SLACK_MS, `unit ${unit}: longest gap between commits ${gap} ms, its own outage ${outageMs.toFixed(0)} ms`);
  const streaming = run.at.get(`${unit}:streaming`);
  assert.ok(streaming !== undefined);
  const early = w.refusals.filter((r) => r.at < streaming - 1000);
  assert.deepEqual(early.map((r) => r.message), [], `unit ${unit} refused before its copy ended`);
  return `unit ${unit}: longest gap ${gap} ms, its move's outage ${outageMs.toFixed(0)} ms, ${w.refusals.length} refusal(s), ${w.commits.length} commits`;
}

/**
 * Every row the writer was told committed lives exactly once, on `placed` (the unit's shard now),
 * and no row of its tag exists that the writer was not told about. `rowsSql` ($1 the tag pattern)
 * returns the ids of the writer's rows on one server.
 */
export async function assertLanded(w: RoutedWriter, unit: string, placed: string, servers: Servers, rowsSql: string, tag: string): Promise<void> {
  assert.deepEqual(w.errors, [], `writer of ${unit}: only fence refusals`);
  assert.ok(w.acked.size > 0, `writer of ${unit} committed`);
  const found = new Map<string, string[]>();
  for (const [id, url] of servers()) {
    for (const r of await sql(url, rowsSql, [`${tag}-%`])) (found.get(r.id) ?? found.set(r.id, []).get(r.id)!).push(id);
  }
  for (const [id] of w.acked) assert.deepEqual(found.get(id), [placed], `acknowledged row ${id} of unit ${unit} lives exactly once, on ${placed}`);
  assert.equal(found.size, w.acked.size, `no row of unit ${unit} the writer was not told about`);
}

/** What an application following the catalog holds: a live router and a plain SQL session. */
export async function openRouting(catalog: string): Promise<{ router: LiveRouter; session: pg.Client; close(): Promise<void> }> {
  const router = await createRouter({ catalog, backoffMs: { initial: 20, max: 200 } });
  const session = new pg.Client({ connectionString: catalog });
  await session.connect();
  return {
    router,
    session,
    async close() {
      await router.close();
      await session.end().catch(() => undefined);
    },
  };
}
