import type pg from 'pg';
import { pgFailure } from '../db/pg-error.js';
import type { Lsn } from '../db/lsn.js';
import type { Statements } from './statements.js';

/** One target shard's connection and where it stands in the stream. */
export interface ShardSession {
  readonly id: string;
  readonly client: pg.Client;
  readonly sql: Statements;
  /** may set session_replication_role = replica (no per-row triggers, as PostgreSQL's own apply worker) */
  readonly replicaRole: boolean;
  /** the source WAL position this shard has committed (end of the last source transaction it holds) */
  pos: Lsn;
  /** a shard transaction is open (a batch of source transactions in flight) */
  open: boolean;
  /** statements applied, for progress */
  applied: number;
  /** data statements sent (one per batch of rows), for progress: proves the batching */
  statements: number;
}

/** Opens the shard's transaction; with the replica role, as PostgreSQL's own apply worker: no per-row user triggers (the guard lets shardctl pass anyway). */
export async function openShardTransaction(s: ShardSession): Promise<void> {
  await s.client.query('BEGIN');
  if (s.replicaRole) await s.client.query('SET LOCAL session_replication_role = replica');
  s.open = true;
}

/**
 * One statement on the shard, in its open transaction (opened first when none is), counted as
 * `changes` applied changes and one statement; a failure names the shard.
 */
export async function runOnShard(s: ShardSession, text: string, values: unknown[], changes: number): Promise<pg.QueryResult> {
  try {
    if (!s.open) await openShardTransaction(s);
    const r = await s.sql.run(text, values);
    s.applied += changes;
    s.statements++;
    return r;
  } catch (e) {
    throw pgFailure(e, `shard ${s.id}`);
  }
}
