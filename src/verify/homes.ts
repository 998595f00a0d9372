import { withCatalogSession } from '../catalog/run.js';
import { placementsIfAny } from '../catalog/read.js';
import type { Config } from '../config/types.js';
import { isUserError } from '../errors.js';
import { topologyRouter } from '../routing/router.js';
import type { PlacementSource } from './types.js';

/** Where each unit should live: its catalog placement, else the shard it routes to (as migrate decides). */
export interface Homes {
  readonly from: PlacementSource;
  home(unit: string): string;
  /** false for a unit the catalog has no placement of while it has others: created on the shards after migrate */
  placed(unit: string): boolean;
  readonly warnings: string[];
}

/**
 * Reads the placements without creating or locking anything (verify writes nothing). A catalog
 * without shardctl's schema, or without placements, means routing decides. With `optional` (after
 * cutover the catalog may have gone with the source) an unreachable catalog is a warning, not a stop.
 */
export async function readHomes(config: Config, optional: boolean): Promise<Homes> {
  const router = topologyRouter(config);
  const route = (u: string) => router.shardForUnit(u);
  const warnings: string[] = [];
  let placements = new Map<string, string>();
  try {
    placements = await withCatalogSession(config.catalog, placementsIfAny, 'shardctl verify');
  } catch (e) {
    if (!optional || !isUserError(e)) throw e;
    warnings.push(`${e.message}; checking against routing instead of the catalog's placements`);
  }
  return {
    from: placements.size ? 'catalog' : 'routing',
    home: (u) => placements.get(u) ?? route(u),
    placed: (u) => placements.size === 0 || placements.has(u),
    warnings,
  };
}
