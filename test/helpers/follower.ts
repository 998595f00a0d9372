import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import pg from 'pg';
import { PROVE_LOCK } from '../../src/online/prover.js';
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
 * Stops `child`, a follower (`migrate --follow` or `rollback --follow`), with SIGSTOP between two
 * rounds of its prover, never inside one: a process frozen holding the prover's lock on the
 * monolith makes cutover and rollback wait for it (up to --timeout) before they fence, not inside
 * the fence. The test holds the lock exclusively while it stops the process. A try for the lock the
 * prover sent just before the stop is still run by its server session, whenever that session gets
 * to it, possibly after the test lets go; so the test waits a moment before it lets go, checks
 * afterwards that no session holds the lock, and if one does, lets the process finish that round
 * and stops it again.
 */
export async function stopBetweenRounds(monolith: string, child: ChildProcess): Promise<void> {
  const c = new pg.Client({ connectionString: monolith });
  await c.connect();
  try {
    for (let tries = 0; ; tries++) {
      await c.query('SELECT pg_advisory_lock($1)', [String(PROVE_LOCK)]);
      child.kill('SIGSTOP');
      await sleep(200);
      await c.query('SELECT pg_advisory_unlock($1)', [String(PROVE_LOCK)]);
      // a bigint advisory key is (classid, objid) = its high and low 32 bits, objsubid 1
      const held = await c.query(
        `SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1 AND granted AND classid::bigint = $1 AND objid::bigint = $2`,
        [String(PROVE_LOCK >> 32n), String(PROVE_LOCK & 0xffff_ffffn)],
      );
      if (held.rows[0].n === 0) return;
      child.kill('SIGCONT');
      if (tries >= 20) assert.fail('the follower was stopped inside a proving round 20 times');
      await sleep(300);
    }
  } finally {
    await c.end();
  }
}

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
