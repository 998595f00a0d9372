import type pg from 'pg';
import type { Config } from '../config/types.js';
import { readPlacements } from '../catalog/placements.js';
import type { UnplacedFound } from '../catalog/topology.js';
import { loadModel, type Model } from '../tables/model.js';
import { connect, withClient } from '../db/connect.js';
import { shardEndpoint } from '../db/endpoints.js';
import { blockedError } from '../errors.js';
import { prepareCells, rootTables, takeInventory } from './inventory.js';

/** A unit with rows on a shard and no placement: created there by an application after migrate. */
export type UnplacedUnit = UnplacedFound;

/**
 * Units living on the shards without a catalog placement (issue #24 follow-up). They route by the
 * topology alone, so a topology change would send them away from their rows; a command recording a
 * new topology places them where they are first (syncTopology's `unplaced`), so they are held and
 * moved like any other unit. Cost: one grouped scan of each root table of every shard, in parallel
 * across shards. A unit found on two shards is refused by name: which copy is live is not ours to guess.
 */
export async function findUnplaced(config: Config, model: Model, placed: ReadonlySet<string>, shards = config.shards.map((s) => s.id)): Promise<UnplacedUnit[]> {
  const found = new Map<string, UnplacedUnit[]>();
  await Promise.all(
    shards.map(async (id) => {
      const endpoint = shardEndpoint(config, id);
      await withClient(endpoint, async (c) => {
        // lat/lng tables are grouped through cells computed in this session, read on a second connection
        const reader = model.cellSpecs.length ? await connect(endpoint) : undefined;
        try {
          if (reader) await prepareCells(c, reader, model);
          // (`nulls`: rows of no unit are counted apart, not listed as a unit; verify reports them)
          for (const [unit, v] of await takeInventory(c, model, rootTables(model), { bytes: true, nulls: new Map() })) {
            if (placed.has(unit)) continue;
            const on = found.get(unit) ?? found.set(unit, []).get(unit)!;
            on.push({ unit, shard: id, rows: v.rows, bytes: v.bytes });
          }
        } finally {
          await reader?.end();
        }
      });
    }),
  );
  const twice = [...found.values()].filter((on) => on.length > 1);
  if (twice.length) {
    const lines = twice.map((on) => `unit ${on[0]!.unit} has rows on ${on.map((x) => x.shard).sort().join(' and ')} and no placement`);
    throw blockedError(twice.length === 1 ? lines[0]! : `${twice.length} units have rows on several shards and no placement`, {
      details: twice.length === 1 ? undefined : lines,
      hint: 'keep one copy of each (delete its stray rows on the other shard), then run again; the catalog was not changed',
    });
  }
  return [...found.values()].map((on) => on[0]!).sort((a, b) => a.unit.localeCompare(b.unit));
}

/**
 * findUnplaced for a command that holds the run lock and reads nothing else of the placements
 * (add-shard, remove-shard): none before migrate placed anything (the shards may not even have tables).
 * The model comes from the first shard holding placed units.
 */
export async function findUnplacedFromCatalog(config: Config, catalog: pg.ClientBase, shards?: string[]): Promise<UnplacedUnit[]> {
  const placed = await readPlacements(catalog);
  if (placed.size === 0) return [];
  const from = [...new Set(placed.values())].sort()[0]!;
  const model = await withClient(shardEndpoint(config, from), (c) => loadModel(config, c, `shard ${from}`));
  return findUnplaced(config, model, new Set(placed.keys()), shards);
}
