import type pg from 'pg';
import type { Config } from '../config/types.js';
import { connect, withClient, type Endpoint } from '../db/connect.js';
import { shardEndpoint } from '../db/endpoints.js';
import { forgetPlacements } from '../catalog/placements.js';
import { deleteUnit, unitRowsOn } from '../rebalance/unit-rows.js';
import type { Model } from '../tables/model.js';
import { prepareCells, rootTables, takeInventory } from '../unit-copy/inventory.js';

/**
 * Units the catalog places on a shard but the monolith no longer holds: deleted on the monolith
 * after a plain `migrate` copied them and before `migrate --follow` began. Their deletes happened
 * before the slot, so no change of the stream removes their rows from the shards, and no changed
 * row names them at cutover: without these two steps they would stay on their shard after a
 * cutover that exits 0.
 */

/**
 * `migrate --follow`'s copy, before the stream starts: the rows of `units` (gone from the monolith
 * at the slot's snapshot) are deleted from every shard, children first, and their placements
 * forgotten. A unit created again later arrives through the stream as a new unit.
 */
export async function dropGoneUnits(config: Config, model: Model, catalog: pg.ClientBase, units: readonly string[]): Promise<void> {
  if (units.length === 0) return;
  for (const unit of units) {
    await Promise.all(config.shards.map((s) => deleteUnit(model, shardEndpoint(config, s.id), unit)));
  }
  await forgetPlacements(catalog, units);
}

/**
 * Cutover, before the fence: the placed units the monolith holds no row of now (one grouped scan of
 * its root tables, while writes go on). Inside the fence only these are looked at (strandedRows).
 */
export async function placedButGone(source: Endpoint, model: Model, placements: ReadonlyMap<string, string>): Promise<string[]> {
  if (placements.size === 0) return [];
  const present = await withClient(source, async (c) => {
    const reader = model.cellSpecs.length ? await connect(source) : undefined;
    try {
      if (reader) await prepareCells(c, reader, model);
      return await takeInventory(c, model, rootTables(model));
    } finally {
      await reader?.end();
    }
  });
  return [...placements.keys()].filter((u) => !present.has(u));
}

/**
 * Cutover, inside the fence (monolith and shards quiet): rows on a shard of a unit from
 * `candidates` that the monolith still holds nothing of, one line per unit and shard. A unit the
 * monolith holds rows of again was created while following: its rows are changed rows, checked
 * with them.
 */
export async function strandedRows(config: Config, model: Model, source: Endpoint, candidates: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const unit of candidates) {
    if (await unitRowsOn(model, source, unit)) continue;
    for (const s of config.shards) {
      const rows = await unitRowsOn(model, shardEndpoint(config, s.id), unit);
      if (rows) out.push(`unit ${unit}: the monolith no longer has it, but shard ${s.id} holds its rows (${rows})`);
    }
  }
  return out;
}
