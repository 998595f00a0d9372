import type pg from 'pg';
import { lsn, type Lsn } from '../db/lsn.js';
import type { Config } from '../config/types.js';
import { withTransaction } from '../db/connect.js';
import { quoteLiteral, quoteTable } from '../db/ident.js';
import { createTableFence, dropTableFence } from './table-fence.js';
import { describePrepared, preparedHolding, PREPARED_WAY_OUT } from '../db/prepared.js';
import { blockedError } from '../errors.js';

/** What fencing the old primary managed to do (each step is best effort: the server may be half-broken). */
export interface ServerFence {
  tables: number;
  sessionsEnded: number;
}

/**
 * Fences a primary that was failed away from but still answers, so a stale writer gets a clear error
 * instead of writing into a copy nobody reads any more: every configured table refuses writes with
 * a message naming the shard and its new primary (SQLSTATE 25006, like a read-only server), and the
 * sessions connected now are ended so none is left mid-transaction. (Making the whole database
 * read-only would be wider, but its generic error is raised before the triggers and hides which
 * server to write to instead.) Per-unit fencing during moves is the rebalance guard's job.
 */
export async function fenceOldPrimary(c: pg.ClientBase, config: Config, shard: string, newPrimary: string): Promise<ServerFence> {
  const message = `shardctl: shard ${shard} failed over to ${newPrimary}; this server is no longer its primary`;
  let tables = 0;
  const configured = config.tables.map((t) => `${t.schema}.${t.name}`);
  // Waits for the writers in flight as long as they take (they end; the old primary's sessions are
  // ended right after), but a prepared transaction never ends by itself: each wait is bounded so
  // that one is found and named instead of waiting forever.
  for (;;) {
    try {
      tables = await fenceTables(c, message, configured);
      break;
    } catch (e) {
      if ((e as { code?: string }).code !== '55P03') throw e;
      const prepared = await preparedHolding(c, configured);
      if (prepared.length) {
        throw blockedError(`shard ${shard}: fencing the old primary waits for ${prepared.map(describePrepared).join('; ')}, which holds its tables; ${PREPARED_WAY_OUT}`, { cause: e });
      }
    }
  }
  const ended = await c.query(
    `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
      WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`,
  );
  return { tables, sessionsEnded: ended.rows[0].n };
}

const FENCE_WAIT_MS = 2000;

async function fenceTables(c: pg.ClientBase, message: string, configured: readonly string[]): Promise<number> {
  let tables = 0;
  await withTransaction(c, async () => {
    await c.query(`SET LOCAL lock_timeout = ${FENCE_WAIT_MS}`);
    await c.query('CREATE SCHEMA IF NOT EXISTS shardctl');
    await c.query(`CREATE OR REPLACE FUNCTION shardctl.refuse_failed_over() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION USING MESSAGE = ${quoteLiteral(message)}, ERRCODE = '25006',
          HINT = 'reload the shard topology (the shardctl config or its catalog) and write to the new primary';
      END $$`);
    for (const name of configured) {
      const exists = await c.query('SELECT to_regclass($1) IS NOT NULL AS ok', [quoteTable(name)]);
      if (!exists.rows[0].ok) continue;
      // partitions and replication-role sessions included (table-fence.ts)
      await createTableFence(c, name, 'shardctl_failed_over', 'shardctl.refuse_failed_over', { replace: false });
      tables++;
    }
  });
  return tables;
}

/**
 * The promoted server replayed the old primary's WAL up to the promotion, the fence included: lift
 * it there. Idempotent (a rerun, or a replica promoted while the old primary was down).
 */
export async function liftServerFence(c: pg.ClientBase, config: Config): Promise<void> {
  await withTransaction(c, async () => {
    for (const t of config.tables) {
      await dropTableFence(c, `${t.schema}.${t.name}`, 'shardctl_failed_over');
    }
    await c.query('DROP FUNCTION IF EXISTS shardctl.refuse_failed_over()');
  });
}

/** The old primary's WAL position once fenced: the replica has every acknowledged write when it has replayed this far. */
export async function currentLsn(c: pg.ClientBase): Promise<Lsn> {
  return lsn((await c.query('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0].lsn);
}
