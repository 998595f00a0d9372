import type { Command } from 'commander';
import { followBack, rollback, usageError, type FollowBackEvent } from '../src/index.js';
import { duration, load, output, withGlobalOptions, type GlobalOptions } from './context.js';
import { viaEnv } from './env.js';
import { interruptSignal } from './signals.js';
import { formatBytes, formatCount, formatSeconds } from './ui/format.js';

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
    const config = load(opts);
    const out = output(opts);
    if (opts.follow) {
      // a timeout exported for rollbacks (SHARDCTL_ROLLBACK_TIMEOUT) has nothing to bound here: only the flag conflicts
      if (opts.timeout !== undefined && !viaEnv('timeout')) throw usageError('--timeout does not apply to rollback --follow');
      const interrupt = interruptSignal();
      const last = new Map<string, number>();
      try {
        const r = await followBack(config, { signal: interrupt.signal, onEvent: (e) => report(e) });
        out.result(
          r.stopped === 'closed'
            ? 'there is no rollback window to follow (cutover --reverse opens one)'
            : `followed the shards until the window ended: ${formatCount(r.applied)} changes applied to the monolith`,
          r,
        );
      } finally {
        interrupt.dispose();
      }
      // NDJSON with --json; otherwise start/stop lines and a status line per shard every 10 s
      function report(e: FollowBackEvent): void {
        if (opts.json) return void process.stderr.write(`${JSON.stringify(e)}\n`);
        if (opts.quiet) return;
        if (e.type === 'reverse-start') process.stderr.write(`shard ${e.shard}: streaming to the monolith from ${e.from}\n`);
        else if (e.type === 'reverse-stop') process.stderr.write(`shard ${e.shard}: stopped (${e.reason}) at ${e.appliedLsn}${e.message ? `: ${e.message}` : ''}\n`);
        else if (Date.now() - (last.get(e.shard) ?? 0) >= 10_000) {
          last.set(e.shard, Date.now());
          process.stderr.write(`shard ${e.shard}: applied ${e.appliedLsn}, lag ${e.lagBytes === null ? '?' : formatBytes(e.lagBytes)}, ${formatCount(e.changesPerSecond)} changes/s\n`);
        }
      }
      return;
    }
    // Ctrl-C lifts the shard fence the rollback holds (exit 130), it never leaves the shards fenced
    const interrupt = interruptSignal();
    const r = await rollback(config, {
      timeoutSeconds: opts.timeout === undefined ? undefined : opts.timeout / 1000,
      signal: interrupt.signal,
      onEvent: (e) => {
        if (opts.json) process.stderr.write(`${JSON.stringify(e)}\n`);
        else if (!opts.quiet) process.stderr.write(`${e.step} after ${formatSeconds(e.seconds)}${e.detail ? ` (${e.detail})` : ''}\n`);
      },
    }).finally(() => interrupt.dispose());
    out.result(
      (r.already
        ? 'already rolled back'
        : `rolled back: the monolith is the source of truth again and takes writes; writes to the shards were refused for ${formatSeconds(r.outageMs / 1000)} and stay refused` +
          `\n${r.sequences} monolith sequences set past the shards' ids`) +
        `\npoint the application's routers back at the monolith; reverse slots dropped on ${r.slotsDropped.length ? r.slotsDropped.join(', ') : 'no shard (none left)'}`,
      r,
    );
  });
}
