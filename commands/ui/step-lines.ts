import { formatSeconds } from './format.js';
import type { Views } from './reporter.js';

/** cutover's and rollback's steps behind their fence: `caught-up after 0.4s (0/3000060)`, one line each. */
export function fenceStepViews<E extends { type: string; step: string; seconds: number; detail?: string }>(): Views<E> {
  return { lines: () => ({ line: (e) => `${e.step} after ${formatSeconds(e.seconds)}${e.detail ? ` (${e.detail})` : ''}` }) };
}
