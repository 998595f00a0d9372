import type pg from 'pg';
import { quoteIdent, quoteTable } from '../db/ident.js';

/**
 * The trigger shape of a table-wide fence (cutover and rollback, source-fence.ts; a failed-over
 * primary, server-fence.ts): trigger `name`, calling `fn` (schema-qualified), refuses
 * writes to `table` however they are made.
 *  - A statement trigger on the table: INSERT, UPDATE, DELETE, TRUNCATE naming it.
 *  - A statement trigger of a partitioned table does not fire for a write that names a partition,
 *    so every partition (at every level) gets its own;
 *  - and the partitioned table gets a row trigger too (`<name>_rows`), which PostgreSQL clones onto
 *    every partition attached later: their INSERT, UPDATE and DELETE are refused as well (a
 *    TRUNCATE naming such a partition is not: no trigger can be cloned for it).
 *  - Every trigger is ENABLE ALWAYS: a session with session_replication_role = replica fires it.
 * `fn` must return COALESCE(NEW, OLD) for the writes it lets through (a row trigger's NULL would
 * skip the row silently).
 */
export async function createTableFence(c: pg.ClientBase, table: string, name: string, fn: string, opts: { replace: boolean }): Promise<void> {
  const create = async (on: string, trigger: string, events: string, level: 'ROW' | 'STATEMENT') => {
    if (!opts.replace) await c.query(`DROP TRIGGER IF EXISTS ${quoteIdent(trigger)} ON ${on}`);
    await c.query(`CREATE ${opts.replace ? 'OR REPLACE ' : ''}TRIGGER ${quoteIdent(trigger)} BEFORE ${events} ON ${on} FOR EACH ${level} EXECUTE FUNCTION ${fn}()`);
    await c.query(`ALTER TABLE ${on} ENABLE ALWAYS TRIGGER ${quoteIdent(trigger)}`);
  };
  const tree = await partitionTree(c, table);
  for (const t of tree.all) await create(t, name, 'INSERT OR UPDATE OR DELETE OR TRUNCATE', 'STATEMENT');
  if (tree.partitioned) await create(quoteTable(table), `${name}_rows`, 'INSERT OR UPDATE OR DELETE', 'ROW');
}

/** Lifts what createTableFence put on `table` (and on the partitions it has now). */
export async function dropTableFence(c: pg.ClientBase, table: string, name: string): Promise<void> {
  const exists = await c.query('SELECT to_regclass($1) IS NOT NULL AS ok', [quoteTable(table)]);
  if (!exists.rows[0].ok) return;
  const tree = await partitionTree(c, table);
  // the row trigger first: dropping it drops its clones on the partitions
  if (tree.partitioned) await c.query(`DROP TRIGGER IF EXISTS ${quoteIdent(`${name}_rows`)} ON ${quoteTable(table)}`);
  for (const t of tree.all) await c.query(`DROP TRIGGER IF EXISTS ${quoteIdent(name)} ON ${t}`);
}

/** `table` and every partition under it (quoted), and whether it is partitioned. */
async function partitionTree(c: pg.ClientBase, table: string): Promise<{ partitioned: boolean; all: string[] }> {
  const r = await c.query<{ t: string; partitioned: boolean }>(
    `SELECT format('%I.%I', n.nspname, k.relname) AS t, k.relkind = 'p' AS partitioned
       FROM pg_partition_tree($1::regclass) p JOIN pg_class k ON k.oid = p.relid JOIN pg_namespace n ON n.oid = k.relnamespace
      ORDER BY p.level, 1`,
    [quoteTable(table)],
  );
  if (!r.rows.length) return { partitioned: false, all: [quoteTable(table)] }; // not a table pg_partition_tree knows
  return { partitioned: r.rows[0]!.partitioned, all: r.rows.map((x) => x.t) };
}
