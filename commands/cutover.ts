import type { Command } from 'commander';
import { cutover } from '../src/index.js';
import { load, output, positiveInt, withGlobalOptions, type GlobalOptions } from './context.js';
import { formatSeconds } from './ui/format.js';

interface CutoverFlags extends GlobalOptions {
  timeout?: number;
}

export function register(program: Command): void {
  withGlobalOptions(
    program
      .command('cutover')
      .description('end an online migration: fence the monolith, let the follower catch up, verify, switch to the shards')
      .option('--timeout <s>', 'seconds to wait for writers in flight and for the follower to catch up (default 60)', positiveInt('--timeout')),
  ).action(async (opts: CutoverFlags) => {
    const config = load(opts);
    const out = output(opts);
    const r = await cutover(config, {
      timeoutSeconds: opts.timeout,
      onEvent: (e) => {
        if (opts.json) process.stderr.write(`${JSON.stringify(e)}\n`);
        else if (!opts.quiet) process.stderr.write(`${e.step} after ${formatSeconds(e.seconds)}${e.detail ? ` (${e.detail})` : ''}\n`);
      },
    });
    out.result(
      r.already
        ? `already cut over (writes to the monolith were refused for ${formatSeconds(r.outageMs / 1000)})`
        : `cut over: the shards are the source of truth; writes to the monolith were refused for ${formatSeconds(r.outageMs / 1000)} and stay refused` +
            `\n${r.sequences} sequences aligned, ${r.units} new unit(s) recorded; point the application's routers at the shards`,
      r,
    );
  });
}
