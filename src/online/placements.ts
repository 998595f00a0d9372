import type pg from 'pg';
import type { Config } from '../config/types.js';
import { connect } from '../db/connect.js';
import { prepareCells, rootTables, takeInventory } from '../transfer/inventory.js';
import { createRouter } from '../routing/router.js';
import type { Model } from '../tables/model.js';
import { sourceEndpoint } from '../db/endpoints.js';

/**
 * Units created on the monolith while it was followed have rows on their shards but no placement
 * yet: after cutover the catalog must name every unit's shard. Returns how many were added.
 */
export async function recordNewUnits(config: Config, model: Model, src: pg.ClientBase, catalog: pg.ClientBase): Promise<number> {
  const reader = model.cellSpecs.length ? await connect(sourceEndpoint(config)) : undefined;
  try {
    if (reader) await prepareCells(src, reader, model);
    const units = await takeInventory(src, model, rootTables(model));
    const router = createRouter(config);
    const names = [...units.keys()];
    const shards = names.map((u) => (config.strategy.kind === 'jump' ? router.shardFor(u) : router.shardForCell(u)));
    const r = await catalog.query(
      `INSERT INTO shardctl.placements (unit, shard, rows)
       SELECT u, s, n FROM unnest($1::text[], $2::text[], $3::bigint[]) AS x(u, s, n)
       ON CONFLICT (unit) DO NOTHING`,
      [names, shards, names.map((u) => String(units.get(u)!.rows))],
    );
    return r.rowCount ?? 0;
  } finally {
    await reader?.end();
  }
}
