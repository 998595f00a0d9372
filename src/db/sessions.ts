import type pg from 'pg';
import pLimit, { type LimitFunction } from 'p-limit';
import { connect, destroy, withClient, type Endpoint } from './connect.js';
import { pgFailure } from './pg-error.js';

/**
 * How a step reaches a server for its short statements: `use(endpoint, fn)` runs `fn` on a session
 * of that server and ends as `withClient` does (a server's error names the endpoint). `fn` must
 * leave the session as it found it: no transaction open, no setting changed beyond a transaction.
 */
export interface Sessions {
  use<T>(e: Endpoint, fn: (c: pg.Client) => Promise<T>): Promise<T>;
}

/** A fresh connection for every use (steps run on their own, outside a run's sessions). */
export const freshSessions: Sessions = { use: (e, fn) => withClient(e, fn) };

/**
 * One session per server for the length of a run, shared by its checks and DDL (the shard checks,
 * the COPY formats, the index deferral and builds, the guards) instead of a connection for each: a
 * connection costs a TCP and SCRAM handshake and a new backend warming its catalog caches (about
 * 9 ms of CPU on a local server; several round trips to a remote one, on the run's critical path).
 * Uses of one server run one at a time, in call order. A use that fails closes its session (it may
 * be mid-transaction or broken); the next use connects again. `close()` ends them all.
 */
export function runSessions(): Sessions & { close(): Promise<void> } {
  const open = new Map<string, { client?: Promise<pg.Client>; queue: LimitFunction }>();
  const slot = (e: Endpoint) => open.get(e.url) ?? open.set(e.url, { queue: pLimit(1) }).get(e.url)!;
  return {
    use<T>(e: Endpoint, fn: (c: pg.Client) => Promise<T>): Promise<T> {
      const s = slot(e);
      return s.queue(async () => {
        s.client ??= connect(e);
        const pending = s.client;
        let c: pg.Client;
        try {
          c = await pending;
        } catch (err) {
          if (s.client === pending) s.client = undefined; // the next use tries again
          throw err;
        }
        try {
          return await fn(c);
        } catch (err) {
          s.client = undefined;
          destroy(c);
          throw pgFailure(err, e.label);
        }
      });
    },
    async close() {
      const clients = [...open.values()].map((s) => s.client);
      open.clear();
      await Promise.all(clients.map(async (p) => (await p?.catch(() => undefined))?.end().catch(() => undefined)));
    },
  };
}
