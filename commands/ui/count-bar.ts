import cliProgress from 'cli-progress';
import { interactive } from './output.js';

/** A bar over a count of things (table scans, units moved) with rate and ETA. */
export interface CountBar {
  start(total: number): void;
  tick(n?: number): void;
  /** a line above the bar (the bar redraws below it) */
  log(line: string): void;
  stop(): void;
}

/**
 * The TTY reporter of verify and rebalance (migrate's bars count rows; these count units of work):
 * undefined when stderr is not an interactive terminal, under CI or NO_COLOR, so the caller prints
 * its plain lines instead.
 */
export function countBar(what: string, opts: { stream?: NodeJS.WriteStream; tty?: boolean } = {}): CountBar | undefined {
  const stream = opts.stream ?? process.stderr;
  if (!(opts.tty ?? interactive(stream))) return undefined;
  const bar = new cliProgress.SingleBar(
    {
      format: ` {bar} {percentage}% {value}/{total} ${what} | {duration_formatted} elapsed, ETA {eta_formatted}`,
      barCompleteChar: '█',
      barIncompleteChar: '░',
      hideCursor: true,
      stream,
      fps: 8,
      etaBuffer: 20,
      noTTYOutput: opts.tty === true && !stream.isTTY, // a forced bar on a non-TTY stream (tests) still draws
    },
    cliProgress.Presets.shades_grey,
  );
  let started = false;
  return {
    start(total) {
      bar.start(Math.max(1, total), 0);
      started = true;
    },
    tick(n = 1) {
      if (started) bar.increment(n);
    },
    log(line) {
      if (!started) return void stream.write(`${line}\n`);
      // clear the bar's line, print, and let the next render draw the bar again
      stream.write(`\r\x1b[2K${line}\n`);
      bar.render();
    },
    stop() {
      if (started) bar.stop();
      started = false;
    },
  };
}
