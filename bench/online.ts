import pg from 'pg';
import type { Config } from '../src/index.js';
import { abandon, cutover, follow, type FollowEvent } from '../src/index.js';

/**
 * The online phase of `npm run bench` (issue #13): how fast the follower applies a write load
 * compared with the monolith taking the same load directly, and the write outage of a cutover
 * under a steady load. Runs on the fleet the other phases left (it copies everything again).
 */
export interface OnlineFigures {
  /** rows changed per second by the write load on the monolith alone (no follower) */
  directChangesPerS: number;
  /** the same load with the follower running: rows changed per second on the monolith */
  loadChangesPerS: number;
  /**
   * source row changes the follower applied per second, from the start of the loaded window until
   * it had caught up (its sustained rate when the load outran it, the load's rate when it kept up)
   */
  applyChangesPerS: number;
  /** bytes the follower was behind when the load stopped (0: it kept up) */
  lagBytesAtEnd: number;
  /** seconds after the load stopped until the follower had caught up */
  drainSeconds: number;
  /**
   * the follower's capacity: source changes per second while it works off a backlog, with no load
   * competing for the machine (the same load ran while it was stopped). On one machine that hosts
   * the monolith, every shard and the follower, the loaded window above measures the machine's
   * share as much as the follower; this is what it can apply.
   */
  backlogChangesPerS: number;
  backlogChanges: number;
  /** write outage of the cutover (fence to recorded), under a steady load */
  outageMs: number;
  /** each cutover step's time (ms) */
  cutoverPhasesMs: Record<string, number>;
  /** rows changed since the copy that the cutover re-proved inside its fence */
  cutoverCheckedRows: number;
  copySeconds: number;
  /** the follower's peak RSS (this process: it runs in-process) while it worked off the backlog */
  backlogPeakRssMB: number;
  /** pgbench only: one UPDATE of every account, applied by the running follower (rows, seconds to catch up, peak RSS) */
  bigUpdate?: { rows: number; seconds: number; peakRssMB: number };
}

/**
 * The write load of the online phase: `busy`, as fast as it goes (the POS writer's 3 connections,
 * pgbench's TPC-B-like script from 4 clients); else a steady trickle (one connection, a pause between
 * transactions) for the cutover. `stop` says how many rows it changed.
 */
export interface OnlineLoad {
  name: string;
  start(busy: boolean, seed: number): { stop(): Promise<{ changes: number }> };
  /** pgbench: the accounts table, for the big UPDATE */
  accounts?: string;
  /** run on the monolith first (pgbench: its keyless history table made REPLICA IDENTITY FULL, as the follower requires) */
  setup?: string;
}

const CAUGHT_UP = 64 * 1024;

export async function runOnline(config: Config, writes: OnlineLoad, seconds: number, log: (s: string) => void): Promise<OnlineFigures> {
  await abandon(config).catch(() => undefined);
  if (writes.setup) await withSource(config, (c) => c.query(writes.setup!));
  // 1. the load alone, as fast as the monolith takes it
  const direct = writes.start(true, 11);
  await sleep(seconds * 1000);
  const d = await direct.stop();
  const directChangesPerS = d.changes / seconds;
  log(`online: the monolith alone takes ${Math.round(directChangesPerS)} changed rows/s (${writes.name})`);

  // 2. the follower: copy, then the same load while it follows, then until it has caught up
  const t0 = performance.now();
  let started!: () => void;
  const streaming = new Promise<void>((r) => (started = r));
  let last: (Extract<FollowEvent, { type: 'follow-progress' }> & { at: number }) | undefined;
  const halt = new AbortController();
  const running = follow(config, {
    signal: halt.signal,
    onEvent: (e) => {
      if (e.type === 'follow-start') started();
      if (e.type === 'follow-progress') last = { ...e, at: performance.now() };
    },
  });
  await Promise.race([streaming, running]);
  const copySeconds = (performance.now() - t0) / 1000;
  await sleep(1500); // a progress event before the window
  const before = last?.sourceChanges ?? 0;
  const w0 = performance.now();
  const load = writes.start(true, 12);
  await sleep(seconds * 1000);
  const l = await load.stop();
  const windowS = (performance.now() - w0) / 1000;
  const stopped = performance.now();
  await sleep(1100); // a progress event after the load
  const lagBytesAtEnd = last?.lagBytes ?? 0;
  while (performance.now() - stopped < 600_000 && (last?.lagBytes ?? 0) > CAUGHT_UP) await sleep(200);
  const caughtUp = last!;
  const applyChangesPerS = (caughtUp.sourceChanges - before) / ((caughtUp.at - w0) / 1000);
  const drainSeconds = Math.max(0, (caughtUp.at - stopped) / 1000);
  log(
    `online: with the follower the monolith took ${Math.round(l.changes / windowS)} rows/s; the follower applied ${Math.round(applyChangesPerS)} source changes/s ` +
      `(${lagBytesAtEnd} bytes behind when the load stopped, caught up ${drainSeconds.toFixed(1)} s later)`,
  );

  // 2b. capacity: stop the follower (the slot keeps the changes), run the load for the same time,
  // then resume it and time how fast it works off that backlog, alone on the machine
  halt.abort();
  await running.catch(() => undefined);
  const backlog = writes.start(true, 14);
  await sleep(seconds * 1000);
  await backlog.stop();
  let resumedAt = 0;
  let resumed: typeof last;
  const resuming = follow(config, {
    onEvent: (e) => {
      if (e.type === 'follow-start') resumedAt = performance.now();
      if (e.type === 'follow-progress') last = resumed = { ...e, at: performance.now() };
    },
  });
  const drainStart = performance.now();
  const rss = peakRss();
  while (performance.now() - drainStart < 600_000 && !(resumed && (resumed.lagBytes ?? 0) <= CAUGHT_UP)) await sleep(100);
  const backlogPeakRssMB = rss.stop();
  const backlogChanges = resumed?.sourceChanges ?? 0;
  const backlogChangesPerS = resumed ? backlogChanges / Math.max(0.001, (resumed.at - resumedAt) / 1000) : 0;
  log(`online: resumed on a backlog of ${seconds} s of load, the follower applied ${backlogChanges} source changes at ${Math.round(backlogChangesPerS)}/s (peak RSS ${backlogPeakRssMB.toFixed(0)} MiB)`);

  // 2c. pgbench: one UPDATE of every account (a transaction of millions of rows), applied by the running follower
  let bigUpdate: OnlineFigures['bigUpdate'];
  if (writes.accounts) {
    const u0 = performance.now();
    const big = peakRss();
    const rows = await withSource(config, (c) => c.query(`UPDATE ${writes.accounts} SET abalance = abalance + 1`).then((r) => r.rowCount ?? 0));
    const [{ lsn }] = await withSource(config, (c) => c.query(`SELECT pg_current_wal_lsn()::text AS lsn`).then((r) => r.rows));
    const target = lsnValue(lsn);
    const applied = () => (last ? lsnValue(last.appliedLsn) >= target : false);
    while (performance.now() - u0 < 1_200_000 && !applied()) await sleep(200);
    bigUpdate = { rows, seconds: (performance.now() - u0) / 1000, peakRssMB: big.stop() };
    log(`online: an UPDATE of all ${rows} accounts was applied ${bigUpdate.seconds.toFixed(1)} s after it started (peak RSS ${bigUpdate.peakRssMB.toFixed(0)} MiB)`);
  }

  // 3. cutover under a steady load (one connection, a pause between transactions), once the
  // follower has caught up with it, as a DBA would wait for a small lag before cutting over
  const steady = writes.start(false, 13);
  const until = Date.now() + 120_000;
  do await sleep(1000);
  while (Date.now() < until && (last?.lagBytes ?? 0) > 256 * 1024);
  const cut = await cutover(config, { timeoutSeconds: 120 });
  await steady.stop();
  await resuming;
  const phases = Object.entries(cut.phasesMs).map(([k, v]) => `${k} ${v} ms`).join(', ');
  log(`online: cutover refused writes for ${cut.outageMs} ms (${cut.checkedRows} changed rows re-proved; ${phases})`);
  return {
    directChangesPerS,
    loadChangesPerS: l.changes / windowS,
    applyChangesPerS,
    lagBytesAtEnd,
    drainSeconds,
    backlogChangesPerS,
    backlogChanges,
    outageMs: cut.outageMs,
    cutoverPhasesMs: cut.phasesMs as Record<string, number>,
    cutoverCheckedRows: cut.checkedRows,
    copySeconds,
    backlogPeakRssMB,
    ...(bigUpdate ? { bigUpdate } : {}),
  };
}

/** Samples this process's RSS every 50 ms until stop(), which returns the peak (MiB). */
function peakRss(): { stop(): number } {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, process.memoryUsage().rss) / (1024 * 1024);
    },
  };
}

const withSource = async <T>(config: Config, fn: (c: pg.Client) => Promise<T>): Promise<T> => {
  const c = new pg.Client({ connectionString: config.source });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
};

/** A pg_lsn's text as a number (X/Y: two 32-bit halves). */
const lsnValue = (text: string): bigint => {
  const [hi, lo] = text.split('/');
  return (BigInt(`0x${hi}`) << 32n) + BigInt(`0x${lo}`);
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
