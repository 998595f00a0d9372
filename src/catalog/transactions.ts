import { hostname } from 'node:os';
import type pg from 'pg';
import { TX_LOCK_CLASS } from './locks.js';

/**
 * The coordinator's record of a cross-shard transaction in the catalog (`shardctl.transactions`).
 * States: preparing → committing → committed, or preparing → aborting → aborted (or straight to
 * aborted). Moving to committing is THE commit decision; every transition is conditional on the
 * state before it, so a coordinator and `resolve` can never decide differently.
 *
 * While it works, the coordinator holds a session advisory lock on its gid in the catalog; `resolve`
 * only touches transactions whose lock it can take, i.e. whose coordinator's session is gone.
 */
export type TxState = 'preparing' | 'committing' | 'aborting' | 'committed' | 'aborted';

export const GID_PREFIX = 'shardctl_';

export async function lockGid(c: pg.ClientBase, gid: string, wait: boolean): Promise<boolean> {
  if (wait) {
    await c.query('SELECT pg_advisory_lock($1, hashtext($2))', [TX_LOCK_CLASS, gid]);
    return true;
  }
  const r = await c.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, hashtext($2)) AS ok', [TX_LOCK_CLASS, gid]);
  return r.rows[0]!.ok;
}

export async function unlockGid(c: pg.ClientBase, gid: string): Promise<void> {
  await c.query('SELECT pg_advisory_unlock($1, hashtext($2))', [TX_LOCK_CLASS, gid]);
}

export async function recordStart(c: pg.ClientBase, gid: string, participants: readonly string[]): Promise<void> {
  await c.query(`INSERT INTO shardctl.transactions (gid, participants, state, pid, host) VALUES ($1, $2, 'preparing', $3, $4)`, [
    gid, participants, process.pid, hostname(),
  ]);
}

/** Moves `gid` from one of `from` to `to`; false when it was in another state (someone else decided). */
export async function transition(c: pg.ClientBase, gid: string, from: readonly TxState[], to: TxState): Promise<boolean> {
  const stamp = to === 'committing' || to === 'aborting' ? 'decided_at = now()' : 'finished_at = now()';
  const r = await c.query(`UPDATE shardctl.transactions SET state = $3, ${stamp} WHERE gid = $1 AND state = ANY($2::text[])`, [gid, from, to]);
  return r.rowCount === 1;
}

/** The transaction's state as recorded now; undefined when the catalog has no record of it. */
export async function txState(c: pg.ClientBase, gid: string): Promise<TxState | undefined> {
  return (await c.query(`SELECT state FROM shardctl.transactions WHERE gid = $1`, [gid])).rows[0]?.state;
}

export interface TxRecord {
  gid: string;
  participants: string[];
  state: TxState;
  startedAt: Date;
}

/** Transactions not finished: still preparing, or decided and not yet carried out everywhere. */
export async function openTransactions(c: pg.ClientBase): Promise<TxRecord[]> {
  const r = await c.query(
    `SELECT gid, participants, state, started_at FROM shardctl.transactions
      WHERE state IN ('preparing', 'committing', 'aborting') ORDER BY started_at, gid`,
  );
  return r.rows.map((x) => ({ gid: x.gid, participants: x.participants, state: x.state, startedAt: x.started_at }));
}

/** `PREPARE TRANSACTION 'gid'` and friends take a literal, not a parameter. */
export const gidLiteral = (gid: string) => `'${gid.replace(/'/g, "''")}'`;
