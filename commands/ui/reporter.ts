import { interactive, bigintSafe } from './output.js';

/** Shows one command's progress events as they come, on stderr; `stop` ends timers and bars. */
export interface Reporter<E> {
  event(e: E): void;
  stop(): void;
}

/** Plain lines for CI logs, cron and pipes: one line per event worth a line, and an optional heartbeat. */
export interface LineView<E> {
  line(e: E): string | undefined;
  /** a status line every 10 s while the command works */
  heartbeat?(): string | undefined;
  /** lines `line` held back to fold them (folded-lines.ts): asked for after each turn of the event loop that had events, and at the end */
  held?(): string | undefined;
}

/** How one command's events look in each mode. */
export interface Views<E> {
  lines: () => LineView<E>;
  /** a live display for a terminal (bars); without one a terminal gets the lines */
  bars?: () => Reporter<E>;
  /** byte counts of high-rate events, which NDJSON folds into one `{"type":"progress","bytes":n}` a second */
  bytesOf?: (e: E) => number | undefined;
}

/**
 * The one reporter of every command: NDJSON events with --json (one JSON object a line), bars on
 * a terminal, plain lines under CI or when piped; --quiet shows no progress at all. Results go to
 * stdout elsewhere; everything here goes to stderr.
 */
export function reporterFor<E extends { type: string }>(opts: { json?: boolean; quiet?: boolean }, views: Views<E>): Reporter<E> {
  if (opts.json) return ndjson(views.bytesOf);
  if (opts.quiet) return { event: () => undefined, stop: () => undefined };
  return interactive(process.stderr) && views.bars ? views.bars() : lines(views.lines());
}

const say = (s: string) => process.stderr.write(`${s}\n`);

function ndjson<E>(bytesOf?: (e: E) => number | undefined): Reporter<E> {
  let bytes = 0;
  const timer = setInterval(() => bytes && say(JSON.stringify({ type: 'progress', bytes })), 1000);
  timer.unref();
  return {
    event(e) {
      const n = bytesOf?.(e);
      if (n !== undefined) bytes += n;
      else say(JSON.stringify(e, bigintSafe));
    },
    stop: () => clearInterval(timer),
  };
}

function lines<E>(view: LineView<E>): Reporter<E> {
  const timer = view.heartbeat
    ? setInterval(() => {
        const s = view.heartbeat?.();
        if (s) say(s);
      }, 10_000)
    : undefined;
  timer?.unref();
  let asking = false;
  const release = () => {
    asking = false;
    const s = view.held?.();
    if (s) say(s);
  };
  return {
    event(e) {
      const s = view.line(e);
      if (s) say(s);
      if (view.held && !asking) {
        asking = true;
        queueMicrotask(release);
      }
    },
    stop: () => {
      clearInterval(timer);
      release();
    },
  };
}
