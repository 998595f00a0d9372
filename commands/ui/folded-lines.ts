import type { LineView } from './reporter.js';

/**
 * Plain lines that fold a run of events sharing a key into one line: the engine reports a step of a
 * group of moves once per unit, in one go, and a log wants one line for the group, not 64. A run
 * ends at an event with another key or none (printed after it) or when the reporter releases what
 * is held (`held`, after the events of one turn of the event loop, and at the end).
 */
export function foldedLines<E>(fold: { key(e: E): string | undefined; line(run: readonly E[]): string }, other: (e: E) => string | undefined): LineView<E> {
  let run: E[] = [];
  let runKey: string | undefined;
  const release = () => {
    const s = run.length ? fold.line(run) : undefined;
    run = [];
    runKey = undefined;
    return s;
  };
  return {
    line(e) {
      const k = fold.key(e);
      if (k === undefined) return [release(), other(e)].filter(Boolean).join('\n') || undefined;
      const out = k === runKey ? undefined : release();
      run.push(e);
      runKey = k;
      return out;
    },
    held: release,
  };
}
