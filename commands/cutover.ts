import type { Command } from 'commander';
import { usageError } from '../src/basics.js';
import type { CutoverEvent } from '../src/index.js';
import { duration, load, output, size, withGlobalOptions, type GlobalOptions } from './context.js';
import { viaEnv } from './env.js';
import { interruptSignal } from './signals.js';
import { formatSeconds } from './ui/format.js';
import { reporterFor } from './ui/reporter.js';
import { fenceStepViews } from './ui/step-lines.js';

interface CutoverFlags extends GlobalOptions {
  timeout?: number;
  reverse?: boolean;
  finish?: boolean;
  maxLag?: number;
  maxLagBytes?: number;
}

export function register(program: Command): void {
  withGlobalOptions(
    program
      .command('cutover')
      .description('end an online migration: fence the monolith, let the follower catch up, verify, switch to the shards')
      .option('--timeout <duration>', 'how long to wait for writers in flight and for the follower to catch up, e.g. 60s or 2m (default 60s)', duration('--timeout', 's'))
      .option('--reverse', 'keep a reverse stream (shards → monolith) so shardctl rollback can undo the cutover')
      .option('--max-lag <duration>', "refuse to fence when the follower is further behind, e.g. 5s (default: health's lag warning, 10s)", duration('--max-lag', 's'))
      .option('--max-lag-bytes <size>', "refuse to fence when the follower is more WAL behind, e.g. 16MB (default: health's lag warning, 64MB)", size('--max-lag-bytes'))
      .option('--finish', 'end the rollback window: stop rollback --follow, drop the reverse slots on every shard'),
  ).action(async (opts: CutoverFlags) => {
    const config = await load(opts);
    const { cutover, finishCutover } = await import('../src/index.js');
    const out = output(opts);
    if (opts.finish) {
      // a timeout exported for cutovers (SHARDCTL_CUTOVER_TIMEOUT) has nothing to bound here: only the flag conflicts
      const timeout = opts.timeout !== undefined && !viaEnv('timeout');
      if (opts.reverse || timeout) throw usageError(`--finish does not go with --${opts.reverse ? 'reverse' : 'timeout'}`);
      const f = await finishCutover(config);
      const dropped = f.slotsDropped.length ? `reverse slot dropped on ${f.slotsDropped.join(', ')}` : 'no reverse slot was left';
      out.result(
        f.closed
          ? `rollback window closed: ${dropped}${f.shardFenceLifted ? '; the fence of an interrupted rollback is lifted from the shards' : ''}; the shards stay the source of truth`
          : `there was no rollback window to close (${dropped})`,
        f,
      );
      return;
    }
    // Ctrl-C lifts the fence the cutover holds (exit 130), it never leaves the monolith fenced
    const interrupt = interruptSignal();
    const reporter = reporterFor<CutoverEvent>(opts, fenceStepViews());
    const r = await cutover(config, {
      timeoutSeconds: opts.timeout === undefined ? undefined : opts.timeout / 1000,
      reverse: opts.reverse,
      maxLag: { seconds: opts.maxLag === undefined ? undefined : opts.maxLag / 1000, bytes: opts.maxLagBytes },
      signal: interrupt.signal,
      onEvent: (e) => reporter.event(e),
    }).finally(() => {
      reporter.stop();
      interrupt.dispose();
    });
    out.result(
      r.already
        ? `already cut over (writes to the monolith were refused for ${formatSeconds(r.outageMs / 1000)})`
        : `cut over: the shards are the source of truth; writes to the monolith were refused for ${formatSeconds(r.outageMs / 1000)} and stay refused` +
            `\n${r.sequences} sequences aligned, ${r.units} new unit(s) recorded; point the application's routers at the shards` +
            (r.reverse
              ? `\nrollback window open: reverse slots on ${Object.keys(r.reverse).join(', ')}; run shardctl rollback --follow now (it keeps the monolith current), end the window with shardctl cutover --finish`
              : ''),
      r,
    );
  });
}
