import type pg from 'pg';
import { blockedError } from '../errors.js';
import { quoteIdent, quoteTable } from '../db/ident.js';
import { foreignKeys, partitionFilter } from '../tables/foreign-keys.js';
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

/**
 * Fails (exit 3 for the batch) if any copied row has no parent for one of the shard's foreign keys
 * (those declared on partitions only included), except the accepted crossing keys.
 */
export async function checkForeignKeys(
  c: pg.ClientBase,
  tables: readonly TableModel[],
  scopeOf: (t: TableModel) => Scope,
  where: string,
  /** readies what `t`'s scope joins on `c` (a fresh shard's staged cells), before its first check */
  before?: (t: TableModel) => Promise<void> | undefined,
): Promise<void> {
  const keys = await foreignKeys(c, tables.map((t) => t.name));
  for (const fk of keys) {
    const t = tables.find((x) => x.name === fk.table)!;
    if (t.config.crossingKeys.includes(fk.name)) continue; // refused by the preflight anyway
    await before?.(t);
    const s = scopeOf(t);
    const notNull = fk.cols.map((col) => `t0.${quoteIdent(col)} IS NOT NULL`).join(' AND ');
    const match = fk.cols.map((col, i) => `r.${quoteIdent(fk.refCols[i]!)} = t0.${quoteIdent(col)}`).join(' AND ');
    const r = await c.query(
      `SELECT count(*) AS n FROM ${s.from} WHERE ${s.filter} AND ${notNull}${partitionFilter(fk)} AND NOT EXISTS (SELECT 1 FROM ${quoteTable(fk.ref)} r WHERE ${match})`,
    );
    const n = Number(r.rows[0].n);
    if (n > 0) {
      throw blockedError(`${where}: table ${fk.partition ?? fk.table}: ${n} copied row(s) break foreign key ${fk.name} (no matching row in ${fk.ref})`, {
        hint: `the parents are not on this shard: shardctl plan counts the rows whose parent is in another unit; the shard's ${fk.ref} may also lack rows the source has`,
      });
    }
  }
}
