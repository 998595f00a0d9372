import type pg from 'pg';
import type { Config } from '../config/types.js';
import { replaceCrossRows, type CrossRecordRow } from '../catalog/cross-shard-rows.js';
import { withClient } from '../db/connect.js';
import { shardEndpoint } from '../db/endpoints.js';
import type { Model } from '../tables/model.js';
import { scopeOf } from '../tables/scope.js';
import { readCrossRows } from './cross-shard-rows.js';

/**
 * Rewrites the catalog's record of cross-shard rows for every table with several routes, from what
 * the shards hold now (they, not the source, are the truth after cutover): each row whose units
 * live on more than one shard, with those shards. Returns the counts per table.
 */
export async function refreshCrossRecord(
  config: Config,
  model: Model,
  catalog: pg.ClientBase,
  home: (unit: string) => string,
  by: string,
): Promise<{ table: string; rows: number; crossShard: number }[]> {
  const out: { table: string; rows: number; crossShard: number }[] = [];
  for (const t of model.sharded.filter((x) => x.config.routes)) {
    const rows = new Map<string, CrossRecordRow>();
    let held = 0; // rows over all shards, a cross-shard row once per copy
    let copies = 0;
    for (const s of config.shards) {
      await withClient(shardEndpoint(config, s.id), async (c) => {
        const scope = scopeOf(model.ctx, t.config);
        const seen = await c.query<{ unit: string }>(`SELECT DISTINCT ${scope.unit} AS unit FROM ${scope.from} WHERE ${scope.unit} IS NOT NULL`);
        held += Number((await c.query<{ n: string }>(`SELECT count(*) AS n FROM ${scope.rows!}`)).rows[0]!.n);
        for (const [key, row] of await readCrossRows(c, t, scope, seen.rows.map((x) => x.unit), home)) {
          copies += rows.has(key) ? 1 : 0;
          rows.set(key, { key, units: [...new Set(row.units)], shards: [...new Set(row.units.map(home))].sort() });
        }
      }, { applicationName: 'shardctl cross-shard record' });
    }
    await replaceCrossRows(catalog, t.name, [...rows.values()], held - copies, by);
    out.push({ table: t.name, rows: held - copies, crossShard: rows.size });
  }
  return out;
}
