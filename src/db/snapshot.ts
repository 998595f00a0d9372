import type pg from 'pg';
import { quoteLiteral } from './ident.js';

/**
 * Starts a REPEATABLE READ transaction, in `snapshot` when given: the snapshot a logical replication
 * slot exported when it was created, so what a copy reads is exactly the state the slot's stream
 * starts after (nothing lost between copy and stream, nothing applied twice).
 */
export async function beginSnapshot(c: pg.ClientBase, snapshot?: string): Promise<void> {
  await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
  if (snapshot) await c.query(`SET TRANSACTION SNAPSHOT ${quoteLiteral(snapshot)}`);
}
