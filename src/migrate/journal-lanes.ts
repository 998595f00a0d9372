import type pg from 'pg';
import pLimit from 'p-limit';
import { connect, type Endpoint } from '../db/connect.js';

/**
 * Where a migrate run journals its finished batches: two catalog sessions side by side, the run's
 * own and a second one opened the first time two journals are due at once. Each journal is one
 * transaction on one session, and two batches never share a unit, so two journals never write the
 * same rows. Why (issue 26): a journal of 50,000 units takes the catalog about a second on a busy
 * machine, and the last two batches of a run finish together: one after the other, their journals
 * were the run's tail.
 */
export interface JournalLanes {
  /** runs `fn` on the least busy session (its own transaction: recordPlacements) */
  run<T>(fn: (c: pg.ClientBase) => Promise<T>): Promise<T>;
  /** ends the second session, if one was opened */
  close(): Promise<void>;
}

export function journalLanes(main: pg.ClientBase, catalog: Endpoint): JournalLanes {
  const own = pLimit(1);
  const other = pLimit(1);
  // opened once; a catalog that refuses a second session (max_connections) leaves the run its own
  let second: Promise<pg.Client | undefined> | undefined;
  const open = () => (second ??= connect(catalog, { applicationName: 'shardctl migrate journal' }).catch(() => undefined));
  const load = (l: typeof own) => l.activeCount + l.pendingCount;
  return {
    run: (fn) => {
      if (load(own) <= load(other)) return own(() => fn(main));
      return other(async () => {
        const c = await open();
        // never two transactions at once on the run's session: without a second one, wait for its lane
        return c ? fn(c) : own(() => fn(main));
      });
    },
    close: async () => {
      await (await second)?.end().catch(() => undefined);
    },
  };
}
