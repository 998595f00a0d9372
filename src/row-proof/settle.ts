import type pg from 'pg';
import { connect, type Endpoint } from '../db/connect.js';
import { pgFailure } from '../db/pg-error.js';
import { provableDirty } from '../stream/positions.js';

/** What a fence should find left to re-prove at most, when the prover can bring it there (a second's work). */
const SETTLED_ROWS = 10_000;

/**
 * Before fencing (writes still flow): while the prover (prune.ts) works the record of changed rows
 * down, waits until it holds at most SETTLED_ROWS provable rows, so the fence re-proves the last
 * seconds' changes and not a burst that just landed (an UPDATE of 400,000 rows re-proved inside
 * cutover's fence took 8 s). Waits at most `timeoutMs`, and no longer than the record keeps
 * shrinking (a stopped prover, rows it cannot prune): then the fence re-proves whatever remains, as
 * it always can. `servers` hold the record under `slots` (cutover: the shards; rollback: the monolith).
 */
export async function settleRecord(
  servers: readonly Endpoint[],
  slots: readonly string[],
  tables: readonly string[],
  timeoutMs: number,
  opts: { applicationName: string; signal?: AbortSignal },
): Promise<void> {
  const clients: { c: pg.Client; label: string }[] = [];
  try {
    for (const e of servers) clients.push({ c: await connect(e, { applicationName: opts.applicationName }), label: e.label });
    const one = ({ c, label }: (typeof clients)[number]) => provableDirty(c, slots, tables).catch((e: unknown) => Promise.reject(pgFailure(e, label)));
    const count = async () => (await Promise.all(clients.map(one))).reduce((a, b) => a + b, 0);
    const until = Date.now() + timeoutMs;
    let best = await count();
    let shrunkAt = Date.now();
    while (best > SETTLED_ROWS && Date.now() < until && Date.now() - shrunkAt < 3000 && !opts.signal?.aborted) {
      await new Promise((r) => setTimeout(r, 250));
      const n = await count();
      if (n < best) [best, shrunkAt] = [n, Date.now()];
    }
  } finally {
    await Promise.all(clients.map(({ c }) => c.end().catch(() => undefined)));
  }
}
