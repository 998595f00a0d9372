import type pg from 'pg';
import { withTransaction } from '../db/connect.js';
import { quoteIdent, quoteLiteral, quoteTable } from '../db/ident.js';
import type { TableModel } from '../tables/model.js';
import { fullRowSql } from './statements.js';

/**
 * While following, the follower is the only writer of the shards' configured tables, so a row it did
 * not record in follow_dirty is as the copy (or a proof, online/prover.ts) left it. A write by anyone
 * else (a DBA's UPDATE, an application routed too early) breaks that: this row trigger records each
 * such row in follow_dirty with no source transaction, so it is never pruned and cutover re-proves
 * it (prove or refuse). The follower's own sessions set `shardctl.follower`, which the trigger's
 * WHEN clause skips without calling the function. ENABLE ALWAYS: replication-role sessions too.
 * A table without a primary key records the row's every value, as the follower does (cutover counts
 * each recorded value on the monolith and the shards). TRUNCATE is not recorded.
 */
const TRIGGER = 'shardctl_follow_record';

/** The key as the follower writes it (JSON.stringify of the key's texts), from the row `r`. */
const keyOf = (r: string) => `'[' || (SELECT string_agg(to_json(to_jsonb(${r}) ->> c)::text, ',' ORDER BY o) FROM unnest(TG_ARGV[1]::text[]) WITH ORDINALITY AS k(c, o)) || ']'`;

/** The record of the row `r`: its key, or (TG_ARGV[3], a keyless table) every value as the follower records them. */
const recordOf = (r: string) => `CASE WHEN TG_NARGS > 3 THEN shardctl.follow_row_text(TG_ARGV[3], ${r}) ELSE ${keyOf(r)} END`;

// Runs a keyless table's row expression (fullRowSql over $1) on the row: a generic trigger function
// cannot name the table's columns, and this text form is what the copy's and cutover's checks compare.
const ROW_TEXT = `CREATE OR REPLACE FUNCTION shardctl.follow_row_text(expr text, r anyelement) RETURNS text LANGUAGE plpgsql AS $f$
  DECLARE out text;
  BEGIN
    EXECUTE 'SELECT (' || expr || ')::text' INTO out USING r;
    RETURN out;
  END $f$`;

const FUNCTION = `CREATE OR REPLACE FUNCTION shardctl.follow_record() RETURNS trigger LANGUAGE plpgsql AS $f$
  BEGIN
    IF TG_OP <> 'INSERT' THEN
      INSERT INTO shardctl.follow_dirty AS d (slot, tbl, key, xid) VALUES (TG_ARGV[0], TG_ARGV[2], ${recordOf('OLD')}, NULL)
        ON CONFLICT (slot, tbl, key) DO UPDATE SET xid = NULL;
    END IF;
    IF TG_OP <> 'DELETE' THEN
      INSERT INTO shardctl.follow_dirty AS d (slot, tbl, key, xid) VALUES (TG_ARGV[0], TG_ARGV[2], ${recordOf('NEW')}, NULL)
        ON CONFLICT (slot, tbl, key) DO UPDATE SET xid = NULL;
    END IF;
    RETURN NULL;
  END $f$`;

/** What the follower's shard sessions run first: their writes are the recorded ones, not foreign. */
export const FOLLOWER_SESSION_SQL = `SET shardctl.follower = 'on'`;

/** Puts the trigger on every table of `tables` (in one transaction; stream state already prepared). */
export async function recordForeignWrites(c: pg.ClientBase, slot: string, tables: readonly TableModel[]): Promise<void> {
  await withTransaction(c, async () => {
    await c.query(ROW_TEXT);
    await c.query(FUNCTION);
    for (const t of tables) {
      const on = quoteTable(t.name);
      const keyless = t.info.primaryKey.length === 0;
      const args = [slot, `{${t.info.primaryKey.map((k) => `"${k.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`).join(',')}}`, t.name, ...(keyless ? [fullRowSql(t, '($1)')] : [])]
        .map(quoteLiteral)
        .join(', ');
      await c.query(`DROP TRIGGER IF EXISTS ${quoteIdent(TRIGGER)} ON ${on}`);
      await c.query(
        `CREATE TRIGGER ${quoteIdent(TRIGGER)} AFTER INSERT OR UPDATE OR DELETE ON ${on} FOR EACH ROW
          WHEN (current_setting('shardctl.follower', true) IS DISTINCT FROM 'on') EXECUTE FUNCTION shardctl.follow_record(${args})`,
      );
      await c.query(`ALTER TABLE ${on} ENABLE ALWAYS TRIGGER ${quoteIdent(TRIGGER)}`);
    }
  });
}

/** Whether the trigger is on any table of this server (a check that takes no table lock). */
export async function recordingWrites(c: pg.ClientBase): Promise<boolean> {
  return Boolean((await c.query('SELECT 1 FROM pg_trigger WHERE tgname = $1 LIMIT 1', [TRIGGER])).rowCount);
}

/**
 * Takes the trigger off (cutover, abandon); tolerates tables that are not there. `lockTimeoutMs`
 * bounds the wait for each table's lock (a session holding a shard table must not keep a fence up).
 */
export async function stopRecordingWrites(c: pg.ClientBase, tables: readonly string[], lockTimeoutMs?: number): Promise<void> {
  await withTransaction(c, async () => {
    if (lockTimeoutMs !== undefined) await c.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.round(lockTimeoutMs))}`);
    for (const t of tables) {
      if (!(await c.query('SELECT to_regclass($1) IS NOT NULL AS ok', [quoteTable(t)])).rows[0].ok) continue;
      await c.query(`DROP TRIGGER IF EXISTS ${quoteIdent(TRIGGER)} ON ${quoteTable(t)}`);
    }
  });
}
