import type { Command } from 'commander';
import { usageError } from '../src/basics.js';
import type { FollowBackEvent, RollbackEvent } from '../src/index.js';
import { duration, load, output, withGlobalOptions, type GlobalOptions } from './context.js';
import { viaEnv } from './env.js';
import { interruptSignal } from './signals.js';
import { formatBytes, formatCount, formatSeconds } from './ui/format.js';
import { reporterFor, type LineView } from './ui/reporter.js';
import { fenceStepViews } from './ui/step-lines.js';

interface RollbackFlags extends GlobalOptions {
  timeout?: number;
  follow?: boolean;
}

export function register(program: Command): void {
  withGlobalOptions(
    program
      .command('rollback')
      .description('undo a cutover kept with --reverse: fence the shards, let the monolith catch up, verify, switch back to the monolith')
      .option('--timeout <duration>', 'how long to wait for writers in flight on the shards and for the reverse follower to catch up, e.g. 60s or 2m (default 60s)', duration('--timeout', 's'))
      .option('--follow', 'the reverse follower: apply every shard\'s changes to the monolith until rollback or cutover --finish'),
  ).action(async (opts: RollbackFlags) => {
    const config = await load(opts);
    const { followBack, rollback } = await import('../src/index.js');
    const out = output(opts);
    if (opts.follow) {
      // a timeout exported for rollbacks (SHARDCTL_ROLLBACK_TIMEOUT) has nothing to bound here: only the flag conflicts
      if (opts.timeout !== undefined && !viaEnv('timeout')) throw usageError('--timeout does not apply to rollback --follow');
      const interrupt = interruptSignal();
      const reporter = reporterFor<FollowBackEvent>(opts, { lines: followLines });
      try {
        const r = await followBack(config, { signal: interrupt.signal, onEvent: (e) => reporter.event(e) });
        out.result(
          r.stopped === 'closed'
            ? 'there is no rollback window to follow (cutover --reverse opens one)'
            : `followed the shards until the window ended: ${formatCount(r.applied)} changes applied to the monolith, ${formatCount(r.proven)} changed rows proven while following`,
          r,
        );
      } finally {
        reporter.stop();
        interrupt.dispose();
      }
      return;
    }
    // Ctrl-C lifts the shard fence the rollback holds (exit 130), it never leaves the shards fenced
    const interrupt = interruptSignal();
    const reporter = reporterFor<RollbackEvent>(opts, fenceStepViews());
    const r = await rollback(config, {
      timeoutSeconds: opts.timeout === undefined ? undefined : opts.timeout / 1000,
      signal: interrupt.signal,
      onEvent: (e) => reporter.event(e),
    }).finally(() => {
      reporter.stop();
      interrupt.dispose();
    });
    out.result(
      (r.already
        ? 'already rolled back'
        : `rolled back: the monolith is the source of truth again and takes writes; writes to the shards were refused for ${formatSeconds(r.outageMs / 1000)} and stay refused` +
          `\n${formatCount(r.checkedRows)} rows changed during the window checked inside the fence; ${r.sequences} monolith sequences set past the shards' ids`) +
        `\npoint the application's routers back at the monolith; reverse slots dropped on ${r.slotsDropped.length ? r.slotsDropped.join(', ') : 'no shard (none left)'}`,
      r,
    );
  });
}

/** rollback --follow without --json: start/stop lines and a status line per shard every 10 s. */
function followLines(): LineView<FollowBackEvent> {
  const last = new Map<string, number>();
  return {
    line(e) {
      if (e.type === 'reverse-start') return `shard ${e.shard}: streaming to the monolith from ${e.from}`;
      if (e.type === 'reverse-warning') return `warning: ${e.message}`;
      if (e.type === 'reverse-stop') return `shard ${e.shard}: stopped (${e.reason}) at ${e.appliedLsn}${e.message ? `: ${e.message}` : ''}`;
      if (Date.now() - (last.get(e.shard) ?? 0) < 10_000) return undefined;
      last.set(e.shard, Date.now());
      return `shard ${e.shard}: applied ${e.appliedLsn}, lag ${e.lagBytes === null ? '?' : formatBytes(e.lagBytes)}, ${formatCount(e.changesPerSecond)} changes/s`;
    },
  };
}
