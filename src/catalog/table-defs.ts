import type pg from 'pg';
import { withTransaction } from '../db/connect.js';

/**
 * The definitions of the configured tables as captured from the source (`shardctl.table_defs`), in
 * the model's order, each stored as JSON (tables/definitions.ts says what it holds): add-shard
 * builds a new shard's tables from them.
 */
export interface TableDefRow {
  readonly table: string;
  /** the definition, as JSON */
  readonly json: string;
}

/** Replaces every stored definition with `defs`, in one catalog transaction. */
export async function writeTableDefs(c: pg.ClientBase, defs: readonly TableDefRow[]): Promise<void> {
  await withTransaction(c, async () => {
    await c.query('DELETE FROM shardctl.table_defs');
    for (const [i, d] of defs.entries()) {
      await c.query('INSERT INTO shardctl.table_defs (table_name, position, ddl) VALUES ($1, $2, $3)', [d.table, i, d.json]);
    }
  });
}

/** The stored definitions (JSON) in order. */
export async function readTableDefs(c: pg.ClientBase): Promise<string[]> {
  const r = await c.query<{ ddl: string }>(`SELECT ddl FROM shardctl.table_defs ORDER BY position`);
  return r.rows.map((x) => x.ddl);
}
