import type pg from 'pg';
import { STATE_LOCK } from '../catalog/locks.js';
import { lsnText, parseLsn, type Lsn } from '../db/lsn.js';

/**
 * On every shard, the position of the source's WAL up to which that shard has applied the stream,
 * committed in the same transaction as the changes it covers: after a crash a shard's row says
 * exactly which source transactions it has (those ending at or before it) and which it has not.
 * follow_stash keeps, until every shard is past them, the rows a shard gave away in a cross-shard
 * move, so the receiving shard can still build them if a crash fell between the two commits.
 * follow_dirty names every row (table and primary key) the follower wrote on that shard since the
 * copy, committed with the write itself: cutover re-proves exactly these rows, since every other row
 * is as the copy proved it on both sides (see README, "Why cutover checks only the changed rows").
 */
export const SHARD_STATE_SQL = [
  'CREATE SCHEMA IF NOT EXISTS shardctl',
  `CREATE TABLE IF NOT EXISTS shardctl.follow_position (
     slot        text PRIMARY KEY,
     lsn         pg_lsn NOT NULL,
     source_time timestamptz,
     applied_at  timestamptz NOT NULL DEFAULT now())`,
  `CREATE TABLE IF NOT EXISTS shardctl.follow_stash (
     slot text NOT NULL,
     lsn  pg_lsn NOT NULL,
     seq  integer NOT NULL,
     rows jsonb NOT NULL,
     PRIMARY KEY (slot, lsn, seq))`,
  `CREATE TABLE IF NOT EXISTS shardctl.follow_dirty (
     slot text NOT NULL,
     tbl  text NOT NULL,
     key  text NOT NULL,
     PRIMARY KEY (slot, tbl, key))`,
  // the source transaction that last wrote the row (null: unknown, or a write that was not the follower's)
  'ALTER TABLE shardctl.follow_dirty ADD COLUMN IF NOT EXISTS xid bigint',
  // each configured table's (leaf partition's) relfilenode on the source at the copy (rewrite.ts)
  `CREATE TABLE IF NOT EXISTS shardctl.follow_relfiles (
     slot text NOT NULL,
     rel  text NOT NULL,
     tbl  text NOT NULL,
     node text NOT NULL,
     PRIMARY KEY (slot, rel))`,
];

/**
 * Creates the stream state tables where they are missing. Several sessions may do this at once on
 * one server (two moves into one shard, one stream per shard into the monolith), and concurrent
 * CREATE … IF NOT EXISTS of one name fails on the catalog's unique index: they take turns. The lock
 * is a session lock and each statement its own transaction, so a session that waited sees what the
 * one before it created (a transaction started before that would keep stale catalog caches).
 */
export async function prepareShardState(c: pg.ClientBase): Promise<void> {
  const r = await c.query(`SELECT to_regclass('shardctl.follow_position') IS NOT NULL AND to_regclass('shardctl.follow_stash') IS NOT NULL
                                  AND to_regclass('shardctl.follow_dirty') IS NOT NULL AND to_regclass('shardctl.follow_relfiles') IS NOT NULL
                                  AND EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('shardctl.follow_dirty') AND attname = 'xid') AS ok`);
  if (r.rows[0].ok) return;
  await c.query(`SELECT pg_advisory_lock(${STATE_LOCK})`);
  try {
    for (const s of SHARD_STATE_SQL) await c.query(s);
  } finally {
    await c.query(`SELECT pg_advisory_unlock(${STATE_LOCK})`).catch(() => undefined);
  }
}

/** The position a target committed for `slot`; undefined before any. */
export async function readPosition(c: pg.ClientBase, slot: string): Promise<Lsn | undefined> {
  const r = await c.query(`SELECT lsn::text AS lsn FROM shardctl.follow_position WHERE slot = $1`, [slot]);
  return parseLsn(r.rows[0]?.lsn) ?? undefined;
}

export async function writePosition(c: pg.ClientBase, slot: string, lsn: Lsn, sourceTime?: Date): Promise<void> {
  await c.query(
    `INSERT INTO shardctl.follow_position (slot, lsn, source_time, applied_at) VALUES ($1, $2, $3, now())
     ON CONFLICT (slot) DO UPDATE SET lsn = EXCLUDED.lsn, source_time = EXCLUDED.source_time, applied_at = now()`,
    [slot, lsnText(lsn), sourceTime ?? null],
  );
}

/** Positions and stash of a slot, gone (abandon, a fresh copy). Tolerates a shard that never had them. */
export async function clearShardState(c: pg.ClientBase, slot: string): Promise<void> {
  const has = await c.query(`SELECT to_regclass('shardctl.follow_position') IS NOT NULL AS ok`);
  if (!has.rows[0].ok) return;
  await c.query('DELETE FROM shardctl.follow_position WHERE slot = $1', [slot]);
  await c.query('DELETE FROM shardctl.follow_stash WHERE slot = $1', [slot]);
  if ((await c.query(`SELECT to_regclass('shardctl.follow_dirty') IS NOT NULL AS ok`)).rows[0].ok) {
    await c.query('DELETE FROM shardctl.follow_dirty WHERE slot = $1', [slot]);
  }
  if ((await c.query(`SELECT to_regclass('shardctl.follow_relfiles') IS NOT NULL AS ok`)).rows[0].ok) {
    await c.query('DELETE FROM shardctl.follow_relfiles WHERE slot = $1', [slot]);
  }
}

/** A row written: [table, JSON text of the primary key (or of every value), the source transaction's id or null]. */
export type DirtyRow = readonly [string, string, string | null];

/**
 * Records rows written in the open shard transaction with the source transaction that last wrote
 * each. An existing record is updated, not skipped: that waits for a prover holding it (prover.ts),
 * so a row written after its proof is recorded again. A record without a transaction (a write
 * that was not the follower's, SHARD_RECORD_SQL) keeps none: such a row is re-proven at cutover.
 */
export async function writeDirty(c: pg.ClientBase, slot: string, keys: readonly DirtyRow[]): Promise<void> {
  if (!keys.length) return;
  await c.query(
    `INSERT INTO shardctl.follow_dirty AS d (slot, tbl, key, xid) SELECT $1, t, k, x FROM unnest($2::text[], $3::text[], $4::bigint[]) AS x(t, k, x)
     ON CONFLICT (slot, tbl, key) DO UPDATE SET xid = CASE WHEN d.xid IS NULL THEN NULL ELSE EXCLUDED.xid END`,
    [slot, keys.map((k) => k[0]), keys.map((k) => k[1]), keys.map((k) => k[2])],
  );
}

/** Every row recorded dirty on this shard: table → primary keys. */
export async function readDirty(c: pg.ClientBase, slot: string): Promise<Map<string, string[][]>> {
  const out = new Map<string, string[][]>();
  const r = await c.query('SELECT tbl, key FROM shardctl.follow_dirty WHERE slot = $1', [slot]);
  for (const x of r.rows as { tbl: string; key: string }[]) {
    const list = out.get(x.tbl) ?? [];
    list.push(JSON.parse(x.key) as string[]);
    out.set(x.tbl, list);
  }
  return out;
}

/** Rows of the record under `slots` the prover may still prune on this server: of `tables` (those it proves), written by the follower (with their source transaction). */
export async function provableDirty(c: pg.ClientBase, slots: readonly string[], tables: readonly string[]): Promise<number> {
  const r = await c.query('SELECT count(*)::bigint AS n FROM shardctl.follow_dirty WHERE slot = ANY($1::text[]) AND xid IS NOT NULL AND tbl = ANY($2::text[])', [slots, tables]);
  return Number(r.rows[0].n);
}
