import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { watchCli, type CliResult } from './cli.js';

/** A --json event of the command: its type and whatever else it carries. */
export type WatchedEvent = { type: string; [k: string]: unknown };

/**
 * Starts a long-running command with --json: `started()` resolves once `count` events of `type` came
 * (and fails if the command ended first), `exit` when it ends. `onEvent` sees every event, with the
 * child to kill at a chosen moment.
 */
export function startWatched(
  args: string[],
  type: string,
  count = 1,
  onEvent: (e: WatchedEvent, child: ChildProcess) => void = () => undefined,
) {
  let ready!: (c: ChildProcess) => void;
  const started = new Promise<ChildProcess>((r) => (ready = r));
  let seen = 0;
  const exit: Promise<CliResult> = watchCli([...args, '--json'], (e, child) => {
    if (e.type === type && ++seen === count) ready(child);
    onEvent(e, child);
  });
  return { exit, started: () => Promise.race([started, exit.then((r) => assert.fail(`${args.join(' ')} ended: ${r.stderr.slice(-2000)}`))]) };
}

/** `migrate --follow`, started once it streams (after its copy). */
export function startFollower(cfg: string, onEvent?: (e: WatchedEvent, child: ChildProcess) => void) {
  const w = startWatched(['migrate', '--follow', '--config', cfg], 'follow-start', 1, onEvent);
  return { exit: w.exit, streaming: w.started };
}
