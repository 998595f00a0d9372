import { formatSeconds } from './format.js';
import type { Views } from './reporter.js';

/** cutover's and rollback's steps behind their fence: `caught-up after 0.4s (0/3000060)`, one line each; their warnings before it. */
export function fenceStepViews<E extends { type: string; step: string; seconds: number; detail?: string } | { type: string; message: string }>(): Views<E> {
  return { lines: () => ({ line: (e) => ('message' in e ? `warning: ${e.message}` : `${e.step} after ${formatSeconds(e.seconds)}${e.detail ? ` (${e.detail})` : ''}`) }) };
}
