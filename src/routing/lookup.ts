import type { Config } from '../config/types.js';
import { usageError } from '../errors.js';
import { topologyRouter } from './router.js';
import { tenantText } from './tenant-key.js';

/** The topology a lookup routes with when it comes from the catalog (catalog/read-topology.ts). */
export interface RoutingTopology extends Pick<Config, 'strategy' | 'shards'> {
  readonly version: number;
  readonly held: ReadonlyMap<string, { readonly shard: string; readonly wanted: string }>;
}

export interface KeyRoute {
  key: string;
  shard: string;
  pinned: boolean;
  /** the catalog's topology version routed with (absent: routed with the config file) */
  version?: number;
  /** the unit's rows are still on `shard`, its move to this shard has not flipped yet */
  movingTo?: string;
}

export interface LocationRoute {
  lat: number;
  lng: number;
  cell: string;
  shard: string;
  /** false when the cell has no mapping entry and the default shard took it */
  mapped: boolean;
  /** the catalog's topology version routed with (absent: routed with the config file) */
  version?: number;
  /** the cell's rows are still on `shard`, its move to this shard has not flipped yet */
  movingTo?: string;
}

/** `route KEY…` for the jump strategy: with the catalog's topology when given, else the config file's. */
export function routeKeys(config: Config, keys: readonly string[], catalog?: RoutingTopology): KeyRoute[] {
  const topo = catalog ?? config;
  if (topo.strategy.kind !== 'jump') throw usageError(`${config.file}: strategy is h3; route a location with --lat and --lng`);
  const router = topologyRouter(topo, catalog?.held);
  const pins = topo.strategy.pins;
  return keys.map((key) => {
    const text = tenantText(key);
    const held = catalog?.held.get(text);
    return {
      key: text,
      shard: router.shardFor(key),
      pinned: !held && text in pins,
      ...(catalog ? { version: catalog.version } : {}),
      ...(held ? { movingTo: held.wanted } : {}),
    };
  });
}

/** `route --lat --lng` for the h3 strategy: with the catalog's topology when given, else the config file's. */
export function routeLocation(config: Config, lat: number, lng: number, catalog?: RoutingTopology): LocationRoute {
  const st = (catalog ?? config).strategy;
  if (st.kind !== 'h3') throw usageError(`${config.file}: strategy is jump; route tenant keys instead of a location`);
  const router = topologyRouter(catalog ?? config, catalog?.held);
  let cell: string;
  try {
    cell = router.cellFor(lat, lng);
  } catch (e) {
    throw usageError((e as Error).message);
  }
  const held = catalog?.held.get(cell);
  return {
    lat,
    lng,
    cell,
    shard: router.shardForCell(cell),
    mapped: Boolean(held) || st.mapping.some((m) => m.cell === cell),
    ...(catalog ? { version: catalog.version } : {}),
    ...(held ? { movingTo: held.wanted } : {}),
  };
}
