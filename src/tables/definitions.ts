import type pg from 'pg';
import type { Model } from './model.js';
import { tableDdl, type TableDdl } from './ddl.js';
import { readTableDefs, writeTableDefs } from '../catalog/table-defs.js';

/** Stores the DDL of the configured tables, as read from `from`, in the catalog (add-shard builds new shards from it). */
export async function captureDefinitions(catalog: pg.ClientBase, from: pg.ClientBase, model: Model): Promise<void> {
  await storeDefinitions(catalog, await tableDefinitions(from, model));
}

/** The DDL of the configured tables as `from` has them: read apart from storing, so a caller can read while its checks run. */
export async function tableDefinitions(from: pg.ClientBase, model: Model): Promise<TableDdl[]> {
  const defs: TableDdl[] = [];
  for (const t of model.tables) defs.push(await tableDdl(from, t.name, t.config.crossingKeys));
  return defs;
}

export async function storeDefinitions(catalog: pg.ClientBase, defs: readonly TableDdl[]): Promise<void> {
  await writeTableDefs(catalog, defs.map((d) => ({ table: d.table, json: JSON.stringify(d) })));
}

export async function readDefinitions(catalog: pg.ClientBase): Promise<TableDdl[]> {
  return (await readTableDefs(catalog)).map((json) => JSON.parse(json) as TableDdl);
}
