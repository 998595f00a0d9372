import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';

export interface RssStats {
  /** resident set size when the phase started (after a GC, when one could be forced) */
  startMB: number;
  /** the highest sample during the phase */
  peakMB: number;
  samples: number;
}

const MB = 1024 * 1024;

/**
 * Samples `process.memoryUsage().rss` every 50 ms while `fn` runs and reports the peak. Timers only
 * fire between event-loop turns, so the peak is the peak seen at those points (a copy pipeline yields
 * every chunk, so that is often enough).
 */
export async function withRss<T>(fn: () => Promise<T>): Promise<{ value: T; rss: RssStats }> {
  forceGc();
  const startMB = process.memoryUsage().rss / MB;
  let peak = startMB;
  let samples = 1;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss / MB);
    samples++;
  }, 50);
  try {
    const value = await fn();
    peak = Math.max(peak, process.memoryUsage().rss / MB);
    return { value, rss: { startMB, peakMB: peak, samples: samples + 1 } };
  } finally {
    clearInterval(timer);
  }
}

let gc: (() => void) | undefined | null = null;

/**
 * A full GC before each phase, so garbage left by the previous one (the fixture load, say) is not
 * counted against the next. `npm run bench` cannot pass --expose-gc, so the flag is set at run time;
 * best effort: without it the phases just start from whatever RSS the last one left.
 */
export function forceGc(): void {
  if (gc === null) {
    try {
      setFlagsFromString('--expose-gc');
      gc = runInNewContext('gc') as () => void;
    } catch {
      gc = undefined;
    }
  }
  gc?.();
}
