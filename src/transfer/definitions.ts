import type pg from 'pg';
import type { Model } from '../tables/model.js';
import { tableDdl, type TableDdl } from '../tables/ddl.js';
import { withTransaction } from '../db/connect.js';

/** Stores the DDL of the configured tables, as read from `from`, in the catalog (add-shard builds new shards from it). */
export async function captureDefinitions(catalog: pg.ClientBase, from: pg.ClientBase, model: Model): Promise<void> {
  const defs: TableDdl[] = [];
  for (const t of model.tables) defs.push(await tableDdl(from, t.name, t.config.crossingKeys));
  await withTransaction(catalog, async () => {
    await catalog.query('DELETE FROM shardctl.table_defs');
    for (const [i, d] of defs.entries()) {
      await catalog.query('INSERT INTO shardctl.table_defs (table_name, position, ddl) VALUES ($1, $2, $3)', [d.table, i, JSON.stringify(d)]);
    }
  });
}

export async function readDefinitions(catalog: pg.ClientBase): Promise<TableDdl[]> {
  const r = await catalog.query(`SELECT ddl FROM shardctl.table_defs ORDER BY position`);
  return r.rows.map((x) => JSON.parse(x.ddl) as TableDdl);
}
