import { startWriter } from '../harness/fixtures/pos-writer.js';
import type { Config } from '../src/config/types.js';
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
}

const CAUGHT_UP = 64 * 1024;

export async function runOnline(config: Config, restaurants: number, seconds: number, log: (s: string) => void): Promise<OnlineFigures> {
  await abandon(config).catch(() => undefined);
  // 1. the load alone, as fast as the monolith takes it
  const direct = startWriter(config.source, restaurants, { workers: 3, pauseMs: 0, seed: 11 });
  await sleep(seconds * 1000);
  const d = await direct.stop();
  const directChangesPerS = d.changes / seconds;
  log(`online: the monolith alone takes ${Math.round(directChangesPerS)} changed rows/s`);

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
  const load = startWriter(config.source, restaurants, { workers: 3, pauseMs: 0, seed: 12 });
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
  const backlog = startWriter(config.source, restaurants, { workers: 3, pauseMs: 0, seed: 14 });
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
  while (performance.now() - drainStart < 600_000 && !(resumed && (resumed.lagBytes ?? 0) <= CAUGHT_UP)) await sleep(100);
  const backlogChanges = resumed?.sourceChanges ?? 0;
  const backlogChangesPerS = resumed ? backlogChanges / Math.max(0.001, (resumed.at - resumedAt) / 1000) : 0;
  log(`online: resumed on a backlog of ${seconds} s of load, the follower applied ${backlogChanges} source changes at ${Math.round(backlogChangesPerS)}/s`);

  // 3. cutover under a steady load (one connection, a pause between transactions), once the
  // follower has caught up with it, as a DBA would wait for a small lag before cutting over
  const steady = startWriter(config.source, restaurants, { workers: 1, pauseMs: 20, seed: 13 });
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
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
