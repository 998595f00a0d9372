import type { CellMapping, Config, Strategy } from '../config/types.js';
import { checkBuckets, jumpHash32 } from './jump.js';
import { parentCell, shardCell } from '../cells/h3.js';
import { tenantKeyHalves, tenantText } from './tenant-key.js';

export interface Router {
  /** Shard ids in config order (bucket i of the jump hash is shards[i]). */
  readonly shards: readonly string[];
  /** jump: the shard of a tenant (pins first, then the hash). */
  shardFor(key: string | number | bigint): string;
  /** h3: the shard of a point (resolution-12 cell → its resolution-3 parent → mapping or default). */
  shardForLocation(lat: number, lng: number): string;
  /** h3: the shard of a cell at the shard resolution or finer. */
  shardForCell(cell: string): string;
  /** h3: the cell that decides a point's shard. */
  cellFor(lat: number, lng: number): string;
  /** The shard of a unit as the catalog names it: a tenant key (jump) or a shard-resolution cell (h3). */
  shardForUnit(unit: string): string;
}

/**
 * The one routing function of the product: the CLI places data with it, and application code imports
 * it to find the shard of a tenant or a location, so the two can never disagree.
 *
 * `held` (unit → where its rows are) is consulted first: the catalog's held routes, for units whose
 * move has not flipped yet (catalog/held-routes.ts). A router made from a config file has none and
 * cannot know when a move flips: deploy the new config after the rebalance; until then a moved
 * unit's old shard refuses its writes naming the new shard.
 *
 * Applications get it through the public `createRouter(config)` (live-routing/live-router.ts;
 * routing/entry.ts for `shardctl/router`); the engine calls it by this name, with held routes.
 *
 * @example
 *   const router = topologyRouter(loadConfig('shardctl.yaml'));
 *   router.shardFor(42);                       // 's2'
 *   router.shardForLocation(37.5665, 126.978); // 'kr-1'
 */
export function topologyRouter(config: Pick<Config, 'strategy' | 'shards'>, held: ReadonlyMap<string, { readonly shard: string }> = new Map()): Router {
  const shards = config.shards.map((s) => s.id);
  const st: Strategy = config.strategy;
  const needs = (kind: Strategy['kind'], what: string): never => {
    throw new TypeError(`${what} needs the ${kind} strategy; this config uses ${st.kind}`);
  };

  if (st.kind === 'jump') {
    const pins = new Map(Object.entries(st.pins));
    const key = new Uint32Array(2);
    const shardFor = (id: string | number | bigint): string => {
      const text = tenantText(id);
      const where = held.get(text);
      if (where !== undefined) return where.shard;
      const pinned = pins.get(text);
      if (pinned !== undefined) return pinned;
      checkBuckets(shards.length);
      tenantKeyHalves(text, key);
      return shards[jumpHash32(key[0]!, key[1]!, shards.length)]!;
    };
    return {
      shards,
      shardFor,
      shardForLocation: () => needs('h3', 'shardForLocation'),
      shardForCell: () => needs('h3', 'shardForCell'),
      cellFor: () => needs('h3', 'cellFor'),
      shardForUnit: shardFor,
    };
  }

  const mapping = new Map<string, CellMapping>(st.mapping.map((m) => [m.cell, m]));
  const cellOpts = { indexResolution: st.indexResolution, shardResolution: st.shardResolution };
  const forCell = (cell: string) => held.get(cell)?.shard ?? mapping.get(cell)?.shard ?? st.defaultShard;
  const shardForCell = (cell: string) => forCell(parentCell(cell.toLowerCase(), st.shardResolution));
  return {
    shards,
    shardFor: () => needs('jump', 'shardFor'),
    cellFor: (lat, lng) => shardCell(lat, lng, cellOpts),
    shardForLocation: (lat, lng) => forCell(shardCell(lat, lng, cellOpts)),
    shardForCell,
    shardForUnit: shardForCell,
  };
}
