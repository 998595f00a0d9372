import type pg from 'pg';
import { quoteTable } from './ident.js';

/**
 * Prepared (two-phase) transactions in the way of shardctl. A prepared transaction keeps its locks
 * until someone commits or rolls it back, whoever opened it is gone, and pg_stat_activity does not
 * show it (pg_blocking_pids reports it as pid 0): a wait behind one is named from pg_prepared_xacts.
 */
export interface PreparedTransaction {
  gid: string;
  database: string;
  owner: string;
  /** when it was prepared (ISO, UTC) */
  prepared: string;
}

// The prepared transaction behind a lock row held by no backend: its own transactionid lock shares the
// lock row's virtualtransaction.
const OWNER_JOIN = `
  JOIN pg_locks x ON x.locktype = 'transactionid' AND x.pid IS NULL AND x.virtualtransaction = h.virtualtransaction
  JOIN pg_prepared_xacts p ON p.transaction = x.transactionid`;
const COLUMNS = `p.gid, p.database, p.owner::text AS owner, to_char(p.prepared AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS prepared`;

/** The prepared transactions holding a lock that backend `pid` waits for. */
export async function preparedBlocking(c: pg.ClientBase, pid: number | null): Promise<PreparedTransaction[]> {
  const r = await c.query<PreparedTransaction>(
    `SELECT DISTINCT ${COLUMNS}
       FROM pg_locks w
       JOIN pg_locks h ON h.granted AND h.pid IS NULL AND h.locktype = w.locktype
        AND h.database IS NOT DISTINCT FROM w.database AND h.relation IS NOT DISTINCT FROM w.relation
        AND h.page IS NOT DISTINCT FROM w.page AND h.tuple IS NOT DISTINCT FROM w.tuple
        AND h.transactionid IS NOT DISTINCT FROM w.transactionid AND h.classid IS NOT DISTINCT FROM w.classid
        AND h.objid IS NOT DISTINCT FROM w.objid AND h.objsubid IS NOT DISTINCT FROM w.objsubid
       ${OWNER_JOIN}
      WHERE w.pid = $1 AND NOT w.granted
      ORDER BY prepared`,
    [pid],
  );
  return r.rows;
}

/** The prepared transactions holding a lock on any of `tables` (or a partition of one) in this database. */
export async function preparedHolding(c: pg.ClientBase, tables: readonly string[]): Promise<PreparedTransaction[]> {
  const r = await c.query<PreparedTransaction>(
    `SELECT DISTINCT ${COLUMNS}
       FROM pg_locks h ${OWNER_JOIN}
      WHERE h.pid IS NULL AND h.locktype = 'relation'
        AND h.database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND h.relation IN (SELECT to_regclass(n) FROM unnest($1::text[]) AS n -- pg_partition_tree has no row for a plain table
                           UNION ALL SELECT t.relid FROM unnest($1::text[]) AS n, pg_partition_tree(to_regclass(n)) AS t)
      ORDER BY prepared`,
    [tables.map(quoteTable)],
  );
  return r.rows;
}

/** One line naming it and the way out. */
export function describePrepared(p: PreparedTransaction): string {
  return `prepared transaction '${p.gid}' (database ${p.database}, owner ${p.owner}, prepared at ${p.prepared})`;
}

export const PREPARED_WAY_OUT =
  'a prepared transaction holds its locks until it is finished: `shardctl resolve` finishes the ones shardctl started (cross-shard transactions); any other, its owner finishes with COMMIT PREPARED or ROLLBACK PREPARED \'<gid>\'';
