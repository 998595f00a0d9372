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
  /** statements the follower applied per second to the shards, over the same window */
  applyChangesPerS: number;
  /** bytes the follower was behind at the end of the window (0: it kept up) */
  lagBytesAtEnd: number;
  /** write outage of the cutover (fence to recorded), under a steady load */
  outageMs: number;
  copySeconds: number;
}

export async function runOnline(config: Config, restaurants: number, seconds: number, log: (s: string) => void): Promise<OnlineFigures> {
  await abandon(config).catch(() => undefined);
  // 1. the load alone, as fast as the monolith takes it
  const direct = startWriter(config.source, restaurants, { workers: 3, pauseMs: 0, seed: 11 });
  await sleep(seconds * 1000);
  const d = await direct.stop();
  const directChangesPerS = d.changes / seconds;
  log(`online: the monolith alone takes ${Math.round(directChangesPerS)} changed rows/s`);

  // 2. the follower: copy, then the same load while it follows
  const t0 = performance.now();
  let started!: () => void;
  const streaming = new Promise<void>((r) => (started = r));
  let last: Extract<FollowEvent, { type: 'follow-progress' }> | undefined;
  const running = follow(config, {
    onEvent: (e) => {
      if (e.type === 'follow-start') started();
      if (e.type === 'follow-progress') last = e;
    },
  });
  await Promise.race([streaming, running]);
  const copySeconds = (performance.now() - t0) / 1000;
  const shardsApplied = () => (last?.shards ?? []).reduce((n, s) => n + s.changes, 0);
  await sleep(1500); // a progress event before the window
  const applied0 = shardsApplied();
  const w0 = performance.now();
  const load = startWriter(config.source, restaurants, { workers: 3, pauseMs: 0, seed: 12 });
  await sleep(seconds * 1000);
  const l = await load.stop();
  const windowS = (performance.now() - w0) / 1000;
  await sleep(1500);
  const applyChangesPerS = (shardsApplied() - applied0) / windowS;
  const lagBytesAtEnd = last?.lagBytes ?? 0;
  log(`online: with the follower the monolith took ${Math.round(l.changes / windowS)} rows/s; the follower applied ${Math.round(applyChangesPerS)} statements/s, ${lagBytesAtEnd} bytes behind at the end`);

  // 3. cutover under a steady load (one connection, a pause between transactions), once the
  // follower has caught up with it, as a DBA would wait for a small lag before cutting over
  const steady = startWriter(config.source, restaurants, { workers: 1, pauseMs: 20, seed: 13 });
  const until = Date.now() + 120_000;
  do await sleep(1000);
  while (Date.now() < until && (last?.lagBytes ?? 0) > 256 * 1024);
  const cut = await cutover(config, { timeoutSeconds: 120 });
  await steady.stop();
  await running;
  log(`online: cutover refused writes for ${cut.outageMs} ms`);
  return { directChangesPerS, loadChangesPerS: l.changes / windowS, applyChangesPerS, lagBytesAtEnd, outageMs: cut.outageMs, copySeconds };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
