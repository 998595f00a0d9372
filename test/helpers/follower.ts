import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { runCli, type CliResult } from './cli.js';
import { sql } from './fleet.js';
import { startFollower as startStreaming, type WatchedEvent } from './watched.js';

/** A `migrate --follow --json` running in the background. */
export interface Follower {
  child: ChildProcess;
  exit: Promise<CliResult>;
}

/** Starts `migrate --follow --json` and resolves once it streams; `onEvent` sees every NDJSON event. */
export async function startFollower(cfg: string, onEvent: (e: WatchedEvent) => void = () => undefined): Promise<Follower> {
  const f = startStreaming(cfg, (e) => onEvent(e));
  return { child: await f.streaming(), exit: f.exit };
}

/** Interrupts the follower (if any) and abandons the online migration. */
export async function stopFollower(follower: Follower | undefined, cfg: string): Promise<void> {
  if (follower) {
    follower.child.kill('SIGINT');
    await follower.exit;
  }
  runCli(['migrate', '--abandon', '--config', cfg]);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Waits until every shard has committed the forward stream (slot shardctl_migrate) past the
 * monolith's current WAL position; fails at once if the follower ends, and after 300 s.
 */
export async function followerCaughtUp(source: string, shards: readonly string[], exit: Promise<CliResult>): Promise<void> {
  const [{ lsn }] = await sql(source, `SELECT pg_current_wal_lsn()::text AS lsn`);
  let ended: CliResult | undefined;
  void exit.then((r) => (ended = r));
  for (let i = 0; ; i++) {
    if (ended) assert.fail(`the follower ended (${ended.status}): ${ended.stderr.slice(-3000)}`);
    if (i > 1200) assert.fail('the follower did not catch up in 300 s');
    const at = await Promise.all(shards.map((u) => sql(u, `SELECT lsn >= $1::pg_lsn AS ok FROM shardctl.follow_position WHERE slot = 'shardctl_migrate'`, [lsn])));
    if (at.every((r) => r[0]?.ok)) return;
    await sleep(250);
  }
}
