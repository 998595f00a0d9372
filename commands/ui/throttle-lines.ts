import type { ThrottleEvent } from '../../src/index.js';
import { formatSeconds } from './format.js';

/** Throttle events on stderr: NDJSON with --json, else "throttled: <why>" and "resumed" lines (none with --quiet). */
export function throttleLines(opts: { json?: boolean; quiet?: boolean }): (e: ThrottleEvent) => void {
  return (e) => {
    if (opts.json) return void process.stderr.write(`${JSON.stringify(e)}\n`);
    if (opts.quiet) return;
    process.stderr.write(e.type === 'throttled' ? `throttled: ${e.detail}\n` : `resumed after ${formatSeconds(e.seconds)} throttled\n`);
  };
}
