import chalk from 'chalk';

/**
 * Where things go: results on stdout, logs and progress on stderr. Colour only on a TTY and not
 * under CI or NO_COLOR (set once, before anything prints).
 */
export function interactive(stream: NodeJS.WriteStream = process.stderr): boolean {
  return Boolean(stream.isTTY) && !process.env.CI && process.env.NO_COLOR === undefined && process.env.TERM !== 'dumb';
}

export function setupColour(): void {
  if (!interactive(process.stdout) && !interactive(process.stderr)) chalk.level = 0;
}

/**
 * A reader that stops early (`shardctl route … | head -1`) closes the pipe: later writes fail with
 * EPIPE. That is not the command's failure: the rest of the output is dropped and the command ends
 * as it would have (a move in progress is not cut short because nobody reads its report).
 */
export function tolerateClosedPipes(): void {
  for (const stream of [process.stdout, process.stderr]) {
    if (stream.listenerCount('error') > 0) continue; // once per process (the demo runs main again)
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE') throw e;
    });
  }
}

export interface Output {
  readonly json: boolean;
  readonly quiet: boolean;
  /** The command's result: JSON (one document) with --json, else text. */
  result(text: string, json: unknown): void;
  /** Informational line on stderr (silent with --quiet or --json). */
  info(line: string): void;
  /** A warning on stderr (kept under --quiet). */
  warn(line: string): void;
}

export function createOutput(opts: { json?: boolean; quiet?: boolean }): Output {
  const json = Boolean(opts.json);
  const quiet = Boolean(opts.quiet);
  return {
    json,
    quiet,
    result(text, doc) {
      if (json) process.stdout.write(`${JSON.stringify(doc, bigintSafe, 2)}\n`);
      else if (text) process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
    },
    info(line) {
      if (!quiet && !json) process.stderr.write(`${line}\n`);
    },
    warn(line) {
      process.stderr.write(`${chalk.yellow('warning:')} ${line}\n`);
    },
  };
}

/** JSON.stringify replacer: bigints become strings (row counts, H3 indexes, checksums). */
export function bigintSafe(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}
