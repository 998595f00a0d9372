import type pg from 'pg';
import type { Config } from '../config/types.js';
import { readPlacements } from '../catalog/placements.js';
import { NoTopologyError, readTopology, type CatalogTopology } from '../catalog/read-topology.js';
import { syncTopology, type UnplacedFound } from '../catalog/topology.js';
import { withClient } from '../db/connect.js';
import { shardEndpoint } from '../db/endpoints.js';
import type { Model } from '../tables/model.js';
import { installGuard } from './unit-guard.js';
import { heldUnder, routeRule, writeRouteRules } from './route-guard.js';

export interface RecordTopologyOptions {
  /** every shard of the old and the new topology, with its URLs (a shard leaving is still in it) */
  readonly fleet: Config;
  readonly model: Model;
  /** units found on the shards without a placement by the run's plan */
  readonly unplaced: readonly UnplacedFound[];
  /** looks for them again (every shard's rows, as `unplaced` was found) */
  readonly rescan: () => Promise<UnplacedFound[]>;
  readonly runId?: number;
}

/**
 * Records `next` in the catalog so that no unit is ever stranded (issue #24): a unit created while
 * the change is recorded, or later by a router on the old topology, can land nowhere the new
 * topology would not look for it.
 *  1. Every shard gets the route guard and checks writes against both the recorded topology and the
 *     coming one (route-guard.ts): from here on a unit can be created only where both route it.
 *  2. The shards are scanned again: a unit created without a placement before step 1 committed on
 *     its shard is found now (step 1 waited for every writer that passed the old check).
 *  3. The catalog records `next`, placing every unit found where its rows are (held there).
 *  4. The shards check writes against the recorded topology with its held routes alone.
 * A crash between 1 and 4 leaves the shards checking both (writes of a unit whose home changes are
 * refused with 40001 meanwhile); the next topology change or rebalance --apply rewrites both.
 * Returns the units placed by step 3.
 */
export async function recordTopology(catalog: pg.ClientBase, next: Config, o: RecordTopologyOptions): Promise<UnplacedFound[]> {
  const ids = o.fleet.shards.map((s) => s.id);
  await Promise.all(ids.map((id) => withClient(shardEndpoint(o.fleet, id), (c) => installGuard(c, shardEndpoint(o.fleet, id), o.model))));
  const old = await readTopology(catalog).catch((e: unknown) => {
    if (e instanceof NoTopologyError) return undefined;
    throw e;
  });
  const placed = await readPlacements(catalog);
  for (const u of o.unplaced) if (!placed.has(u.unit)) placed.set(u.unit, u.shard);
  await writeRouteRules(o.fleet, { current: old ? recordedRule(old) : undefined, next: routeRule(next, heldUnder(next, placed)) });
  const found = new Map(o.unplaced.map((u) => [u.unit, u]));
  for (const u of await o.rescan()) found.set(u.unit, u);
  const unplaced = [...found.values()].sort((a, b) => a.unit.localeCompare(b.unit));
  await syncTopology(catalog, next, unplaced, o.runId);
  await writeRouteRules(o.fleet, { current: recordedRule(await readTopology(catalog)), next: null });
  return unplaced;
}

const recordedRule = (t: CatalogTopology) => routeRule(t, new Map([...t.held].map(([u, h]) => [u, h.shard])), t.version);
