import type { Config } from '../config/types.js';
import { usageError } from '../errors.js';
import { createRouter } from './router.js';
import { tenantText } from './tenant-key.js';

export interface KeyRoute {
  key: string;
  shard: string;
  pinned: boolean;
}

export interface LocationRoute {
  lat: number;
  lng: number;
  cell: string;
  shard: string;
  /** false when the cell has no mapping entry and the default shard took it */
  mapped: boolean;
}

/** `route KEY…` for the jump strategy. */
export function routeKeys(config: Config, keys: readonly string[]): KeyRoute[] {
  if (config.strategy.kind !== 'jump') throw usageError(`${config.file}: strategy is h3; route a location with --lat and --lng`);
  const router = createRouter(config);
  const pins = config.strategy.pins;
  return keys.map((key) => ({ key: tenantText(key), shard: router.shardFor(key), pinned: key in pins }));
}

/** `route --lat --lng` for the h3 strategy. */
export function routeLocation(config: Config, lat: number, lng: number): LocationRoute {
  const st = config.strategy;
  if (st.kind !== 'h3') throw usageError(`${config.file}: strategy is jump; route tenant keys instead of a location`);
  const router = createRouter(config);
  let cell: string;
  try {
    cell = router.cellFor(lat, lng);
  } catch (e) {
    throw usageError((e as Error).message);
  }
  return { lat, lng, cell, shard: router.shardForCell(cell), mapped: st.mapping.some((m) => m.cell === cell) };
}
