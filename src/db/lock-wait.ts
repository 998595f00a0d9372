import type pg from 'pg';
import { blockedError } from '../errors.js';
import { redactText } from '../redact.js';
import { connect, endpointName, withTransaction, type Endpoint } from './connect.js';
import { describePrepared, preparedBlocking, PREPARED_WAY_OUT } from './prepared.js';

/**
 * How long shardctl may wait for a lock on a production server. While shardctl waits for a lock
 * that a long application transaction holds, every later writer of that table (or of the fence
 * lock) queues behind shardctl, so a wait must be short and given up: each attempt waits at most
 * `lockTimeoutMs` (lock_timeout), then backs off and tries again, `attempts` times in all.
 */
export interface LockWaitOptions {
  /** lock_timeout of one attempt (default 1000 ms; SHARDCTL_LOCK_TIMEOUT_MS) */
  lockTimeoutMs?: number;
  /** attempts before giving up (default 5; SHARDCTL_LOCK_ATTEMPTS) */
  attempts?: number;
  /** pause after the first failed attempt, doubled after each (default 500 ms) */
  backoffMs?: number;
}

const LOCK_NOT_AVAILABLE = '55P03';

export function lockWaitDefaults(opts: LockWaitOptions = {}): Required<LockWaitOptions> {
  const env = (name: string) => (process.env[name] && /^\d+$/.test(process.env[name]!) ? Number(process.env[name]) : undefined);
  return {
    lockTimeoutMs: opts.lockTimeoutMs ?? env('SHARDCTL_LOCK_TIMEOUT_MS') ?? 1000,
    attempts: Math.max(1, opts.attempts ?? env('SHARDCTL_LOCK_ATTEMPTS') ?? 5),
    backoffMs: opts.backoffMs ?? 500,
  };
}

/**
 * Runs `fn` in a transaction on `c` whose lock waits are bounded (see LockWaitOptions). When every
 * attempt times out, fails with exit 3 naming what held the lock (pid, application, user, state,
 * transaction age and query, from pg_blocking_pids, looked up on a side connection while waiting);
 * nothing of `fn` is committed then.
 */
export async function withBoundedLocks<T>(
  c: pg.Client,
  endpoint: Endpoint,
  what: string,
  fn: () => Promise<T>,
  opts: LockWaitOptions = {},
): Promise<T> {
  const o = lockWaitDefaults(opts);
  let blockers: string[] = [];
  // one watcher for every attempt: it names the blocker even when connecting takes longer than a wait
  const watch = watchBlockers(endpoint, (c as unknown as { processID: number | null }).processID, Math.max(10, Math.floor(o.lockTimeoutMs * 0.6)), (b) => (blockers = b));
  const prepared = () => blockers.some((b) => b.startsWith('prepared transaction'));
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        return await withTransaction(c, async () => {
          await c.query(`SELECT set_config('lock_timeout', $1, true)`, [`${o.lockTimeoutMs}ms`]);
          return fn();
        });
      } catch (e) {
        if ((e as { code?: string }).code !== LOCK_NOT_AVAILABLE) throw e;
        if (attempt >= o.attempts) {
          const who = blockers.length ? blockers.join('; ') : 'a transaction that ended before it could be named';
          throw blockedError(
            `${endpointName(endpoint)}: ${what}: gave up after ${o.attempts} waits of ${o.lockTimeoutMs} ms for a lock held by ${who}; nothing was changed`,
            { hint: prepared() ? `${PREPARED_WAY_OUT}; then run the same command again` : 'end or shorten that transaction, then run the same command again', cause: e },
          );
        }
        await new Promise((r) => setTimeout(r, o.backoffMs * 2 ** (attempt - 1)));
      }
    }
  } finally {
    await watch.stop();
  }
}

/**
 * From `delayMs` on, asks the server on a side connection (every 100 ms until stopped) who blocks
 * backend `pid`, keeping the last answer: a busy server can take longer to connect than a wait lasts.
 */
function watchBlockers(endpoint: Endpoint, pid: number | null, delayMs: number, found: (b: string[]) => void): { stop(): Promise<void> } {
  let stopped = false;
  let side: Promise<pg.Client> | undefined;
  let loop: Promise<void> = Promise.resolve();
  const timer = setTimeout(() => {
    side = connect(endpoint, { applicationName: 'shardctl lock-wait' });
    loop = (async () => {
      const c = await side!;
      while (!stopped) {
        const r = await c.query(BLOCKERS_SQL, [pid]);
        // a prepared transaction is no session (pg_blocking_pids says pid 0): named from pg_prepared_xacts
        const prepared = (await preparedBlocking(c, pid)).map(describePrepared);
        if (r.rows.length || prepared.length) found([...prepared, ...r.rows.map(describeBlocker)]);
        await new Promise((res) => setTimeout(res, 100));
      }
    })().catch(() => undefined);
  }, delayMs);
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await loop;
      if (side) await side.then((c) => c.end()).catch(() => undefined);
    },
  };
}

const BLOCKERS_SQL = `
  SELECT a.pid, a.application_name AS app, a.usename AS "user", a.state,
         extract(epoch FROM now() - a.xact_start)::int AS xact_seconds, left(a.query, 160) AS query
    FROM pg_stat_activity a
   WHERE a.pid = ANY (pg_blocking_pids($1))
   ORDER BY a.xact_start`;

function describeBlocker(b: { pid: number; app: string; user: string; state: string; xact_seconds: number | null; query: string }): string {
  const age = b.xact_seconds === null ? '' : `, transaction open ${b.xact_seconds} s`;
  return `pid ${b.pid} (application '${b.app}', user ${b.user}, ${b.state}${age}, last query: ${JSON.stringify(redactText(b.query ?? ''))})`;
}
