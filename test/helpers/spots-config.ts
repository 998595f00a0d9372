import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Fleet } from '../../harness/fleet/index.js';

/**
 * The config of the lat/lng fixtures (spots by lat/lng, visits via spots): the cells mapped to the
 * fleet's two shards in turn, the default shard the first. Returns its path and the test's own
 * oracle of a cell's shard.
 */
export function writeSpotsConfig(fleet: Fleet, cells: readonly string[]): { cfg: string; shardOf: (cell: string) => string } {
  const shards = fleet.shards.map((s) => ({ id: s.id, primary: s.primary.url() }));
  const mapping = cells.map((cell, i) => ({ cell, shard: shards[i % 2]!.id }));
  const mapped = new Map(mapping.map((m) => [m.cell, m.shard]));
  const cfg = join(fleet.dir, 'spots.yaml');
  writeFileSync(cfg, JSON.stringify({
    source: fleet.source.url(),
    strategy: { kind: 'h3', defaultShard: shards[0]!.id, mapping },
    shards,
    tables: [{ name: 'spots', lat: 'lat', lng: 'lng' }, { name: 'visits', via: 'spot_id -> spots.id' }],
  }), { mode: 0o600 });
  return { cfg, shardOf: (cell) => mapped.get(cell) ?? shards[0]!.id };
}
