import type pg from 'pg';
import { withTransaction } from '../db/connect.js';
import { quoteTable } from '../db/ident.js';
import { describePrepared, preparedHolding, PREPARED_WAY_OUT } from '../db/prepared.js';
import { blockedError } from '../errors.js';
import { createTableFence, dropTableFence } from './table-fence.js';

/**
 * The cutover fence on the monolith: a statement trigger on every configured table (and on each
 * of its partitions, table-fence.ts; ENABLE ALWAYS, so replication-role sessions meet it
 * too) that refuses INSERT, UPDATE, DELETE and TRUNCATE from any session but shardctl's own (the `shardctl.bypass`
 * setting every shardctl connection pins, as the rebalance fence does). Creating the triggers takes
 * each table's SHARE ROW EXCLUSIVE lock, so the fence waits for writers in flight (bounded by
 * `lockTimeoutMs`) and, once committed, refuses every later write whatever the writer's isolation
 * level: a transaction's snapshot does not hide a committed trigger from its next statement.
 */
/**
 * The same fence serves the other direction: `rollback` puts it on every shard (trigger
 * shardctl_rollback_fence) while the monolith catches up, and leaves it there once the monolith is
 * the source of truth again. A table fence, not the per-unit one: it also refuses units and
 * reference rows that do not exist yet.
 */
export type SourceFenceKind = 'cutover' | 'rollback';

const TRIGGERS: Record<SourceFenceKind, string> = { cutover: 'shardctl_cutover_fence', rollback: 'shardctl_rollback_fence' };

/** The trigger function of a fence: refuses every write but shardctl's own, saying why and where to write. */
const fenceFunction = (kind: SourceFenceKind, why: string, hint: string) => `CREATE OR REPLACE FUNCTION shardctl.${kind}_fence() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    IF current_setting('shardctl.bypass', true) = 'on' THEN RETURN COALESCE(NEW, OLD); END IF;
    RAISE EXCEPTION 'shardctl: table %.% ${why}', TG_TABLE_SCHEMA, TG_TABLE_NAME USING ERRCODE = '55000', HINT = '${hint}';
  END $$`;

const FUNCTIONS: Record<SourceFenceKind, string> = {
  cutover: fenceFunction(
    'cutover',
    'is cut over (or being cut over) to the shards; writes to the monolith are refused',
    'write through the shards (createRouter); if the cutover failed, it lifted this fence',
  ),
  rollback: fenceFunction(
    'rollback',
    'is rolled back (or being rolled back) to the monolith; writes to the shards are refused',
    'write to the monolith; if the rollback failed, it lifted this fence',
  ),
};

/**
 * Puts the fence on `tables` (the server `label` names, e.g. `shard s1`), waiting at most
 * `lockTimeoutMs` for the writers in flight. When a prepared transaction holds one of the tables,
 * the error names it and the way out (it would hold them until someone finishes it).
 */
export async function fenceSource(c: pg.ClientBase, tables: readonly string[], lockTimeoutMs: number, kind: SourceFenceKind = 'cutover', label = 'the server'): Promise<void> {
  const until = Date.now() + lockTimeoutMs;
  for (;;) {
    try {
      return await fenceOnce(c, tables, Math.max(1, until - Date.now()), kind);
    } catch (e) {
      if ((e as { code?: string }).code === LOCK_NOT_AVAILABLE) {
        const prepared = await preparedHolding(c, tables);
        if (prepared.length) {
          throw blockedError(`${label}: the ${kind} fence waited ${lockTimeoutMs} ms for ${prepared.map(describePrepared).join('; ')}, which holds the tables; ${PREPARED_WAY_OUT}`, { cause: e });
        }
      }
      // Taking the tables one after the other can close a cycle with a writer that holds one and
      // waits for another: PostgreSQL then fails one of the two. When it is the fence, try again.
      if ((e as { code?: string }).code !== '40P01' || Date.now() >= until) throw e;
    }
  }
}

const LOCK_NOT_AVAILABLE = '55P03';

async function fenceOnce(c: pg.ClientBase, tables: readonly string[], lockTimeoutMs: number, kind: SourceFenceKind): Promise<void> {
  const trigger = TRIGGERS[kind];
  await withTransaction(c, async () => {
    await c.query(`SET LOCAL lock_timeout = ${Math.round(lockTimeoutMs)}`);
    await c.query(`LOCK TABLE ${tables.map(quoteTable).join(', ')} IN SHARE ROW EXCLUSIVE MODE`);
    await c.query('CREATE SCHEMA IF NOT EXISTS shardctl');
    await c.query(FUNCTIONS[kind]);
    // CREATE OR REPLACE TRIGGER (PostgreSQL 14+) takes SHARE ROW EXCLUSIVE; DROP TRIGGER would take
    // ACCESS EXCLUSIVE and block readers too
    const replace = Number((await c.query(`SELECT current_setting('server_version_num') AS v`)).rows[0].v) >= 140000;
    // partitions included, replication-role sessions included (table-fence.ts)
    for (const t of tables) await createTableFence(c, t, trigger, `shardctl.${kind}_fence`, { replace });
  });
}

export async function liftSourceFence(c: pg.ClientBase, tables: readonly string[], kind: SourceFenceKind = 'cutover'): Promise<void> {
  await withTransaction(c, async () => {
    for (const t of tables) await dropTableFence(c, t, TRIGGERS[kind]);
  });
}

export async function sourceFenced(c: pg.ClientBase, tables: readonly string[], kind: SourceFenceKind = 'cutover'): Promise<string[]> {
  const r = await c.query(
    `SELECT n.nspname || '.' || c.relname AS t FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE g.tgname = $1 AND n.nspname || '.' || c.relname = ANY($2::text[])`,
    [TRIGGERS[kind], tables],
  );
  return r.rows.map((x) => x.t as string);
}
