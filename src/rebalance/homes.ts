import type pg from 'pg';
import type { Config } from '../config/types.js';
import { topologyRouter } from '../routing/router.js';
import { placedOrMoving } from '../catalog/moves.js';
import type { HomesOf, OnShard } from './unit-rows.js';

/**
 * Where units live now, from the catalog: the placement, plus both ends of a move in flight (a row
 * another unit may still need on either shard is kept: never a lost copy, at worst one left over
 * for verify to name). Unplaced units live where they route.
 */
export function catalogHomes(config: Config, catalog: pg.ClientBase, serial: <T>(fn: () => Promise<T>) => Promise<T>): HomesOf {
  const router = topologyRouter(config);
  return async (units) => {
    const rows = await serial(() => placedOrMoving(catalog, units));
    const out = new Map<string, Set<string>>();
    for (const x of rows) (out.get(x.unit) ?? out.set(x.unit, new Set()).get(x.unit)!).add(x.shard);
    for (const u of units) if (!out.has(u)) out.set(u, new Set([router.shardForUnit(u)]));
    return out;
  };
}

/** A shard by id with the catalog's view of where other units live. */
export const onShard = (id: string, homesOf: HomesOf): OnShard => ({ id, homesOf });
