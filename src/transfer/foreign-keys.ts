import type pg from 'pg';
import { blockedError } from '../errors.js';
import { quoteIdent } from '../db/ident.js';
import type { TableModel } from '../tables/model.js';
import type { Scope } from '../tables/scope.js';

/**
 * Per-row foreign-key triggers make COPY into a shard up to 3× slower. When the target role may
 * (a superuser, or PG15+ GRANT SET ON PARAMETER session_replication_role), the copy runs with
 * session_replication_role = replica, as logical replication does, and every foreign key of the
 * copied rows is checked afterwards with one set-based anti-join per constraint, before commit.
 * Deletes run before that, with triggers on, so ON DELETE rules still apply.
 */
export async function mayBypassTriggers(c: pg.ClientBase): Promise<boolean> {
  const r = await c.query(`SELECT current_setting('is_superuser') = 'on' AS su, current_setting('server_version_num')::int AS v`);
  if (r.rows[0].su) return true;
  if (r.rows[0].v < 150000) return false;
  return (await c.query(`SELECT has_parameter_privilege('session_replication_role', 'SET') AS ok`)).rows[0].ok;
}

interface ForeignKey {
  name: string;
  table: string;
  ref: string;
  cols: string[];
  refCols: string[];
}

const FOREIGN_KEYS = `
  SELECT c.conname AS name, n.nspname || '.' || t.relname AS table, c.confrelid::regclass::text AS ref,
         ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, o)
               JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o) AS cols,
         ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, o)
               JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.o) AS "refCols"
    FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace
   WHERE c.contype = 'f' AND n.nspname || '.' || t.relname = ANY($1::text[])`;

/** Fails (exit 3 for the batch) if any row in the scopes has no parent for one of its foreign keys. */
export async function checkForeignKeys(c: pg.ClientBase, tables: readonly TableModel[], scopeOf: (t: TableModel) => Scope, where: string): Promise<void> {
  const fks = (await c.query<ForeignKey>(FOREIGN_KEYS, [tables.map((t) => t.name)])).rows;
  for (const fk of fks) {
    const t = tables.find((x) => x.name === fk.table)!;
    const s = scopeOf(t);
    const notNull = fk.cols.map((col) => `t0.${quoteIdent(col)} IS NOT NULL`).join(' AND ');
    const match = fk.cols.map((col, i) => `r.${quoteIdent(fk.refCols[i]!)} = t0.${quoteIdent(col)}`).join(' AND ');
    const r = await c.query(
      `SELECT count(*) AS n FROM ${s.from} WHERE ${s.filter} AND ${notNull} AND NOT EXISTS (SELECT 1 FROM ${fk.ref} r WHERE ${match})`,
    );
    const n = Number(r.rows[0].n);
    if (n > 0) {
      throw blockedError(`${where}: table ${fk.table}: ${n} copied row(s) break foreign key ${fk.name} (no matching row in ${fk.ref})`, {
        hint: `the shard's ${fk.ref} lacks rows the source has; make it match, then run again`,
      });
    }
  }
}
