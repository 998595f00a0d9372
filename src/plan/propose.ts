import type { CellMapping, Config } from '../config/types.js';
import { usageError } from '../errors.js';
import { topologyRouter } from '../routing/router.js';
import { buildCellGraph, partitionStats } from './cell-graph.js';
import { proposeRegions, type CapacityStatus } from './regions.js';

export interface ProposedCell {
  cell: string;
  shard: string;
  region?: string;
  capacity_status?: CapacityStatus;
}

export interface ProposedMapping {
  shards: { shard: string; cells: number; bytes: number }[];
  /** max/mean bytes per shard */
  imbalance: number;
  /** share of the bytes whose cell borders a data-holding cell on another shard (0..1) */
  boundaryShare: number;
  /** cells (holding data) that route to another shard than now, and their bytes */
  moved: { cells: number; bytes: number };
  /** the mapping to paste: every cell holding data, plus mapped cells without data as they are */
  mapping: ProposedCell[];
}

/**
 * Proposes a cell → shard mapping onto `n` shards that keeps neighbouring cells together (see
 * `proposeRegions`), weighted by bytes. Shard ids are the configured ones, then s<i> for more. A
 * cell keeps its region name and capacity status; a cell new to the mapping takes the region of the
 * nearest named cell it is connected to through neighbours on the same proposed shard (none if none).
 */
export function proposeMapping(cells: readonly { unit: string; bytes: number }[], config: Config, n: number): ProposedMapping {
  if (!Number.isInteger(n) || n < 1) throw usageError('--shards must be a whole number of at least 1');
  if (config.strategy.kind !== 'h3') throw usageError('--propose-mapping is for the h3 strategy; jump needs no mapping');
  const ids = Array.from({ length: n }, (_, i) => config.shards[i]?.id ?? `s${i}`);
  const router = topologyRouter(config);
  const mapped = new Map<string, CellMapping>(config.strategy.mapping.map((m) => [m.cell, m]));
  const p = proposeRegions({
    cells: cells.map((c) => ({ cell: c.unit, weight: c.bytes })),
    shards: ids,
    current: (c) => router.shardForCell(c),
    status: (c) => mapped.get(c)?.capacityStatus,
  });
  const regionOf = spreadRegions(cells, p.assignment, mapped);
  const mapping: ProposedCell[] = [];
  for (const [cell, shard] of p.assignment) {
    const m = mapped.get(cell);
    const region = m?.region ?? regionOf.get(cell);
    mapping.push({ cell, shard, ...(region ? { region } : {}), ...(m?.capacityStatus ? { capacity_status: m.capacityStatus } : {}) });
  }
  for (const m of config.strategy.mapping) {
    if (p.assignment.has(m.cell)) continue;
    mapping.push({ cell: m.cell, shard: m.shard, ...(m.region ? { region: m.region } : {}), ...(m.capacityStatus ? { capacity_status: m.capacityStatus } : {}) });
  }
  return {
    shards: ids.map((shard, i) => ({ shard, cells: p.stats.cells[i]!, bytes: p.stats.loads[i]! })),
    imbalance: p.stats.imbalance,
    boundaryShare: p.stats.boundaryShare,
    moved: { cells: p.moved.cells, bytes: p.moved.weight },
    mapping: mapping.sort((a, b) => a.cell.localeCompare(b.cell)),
  };
}

/** Share of the bytes whose cell borders a data-holding cell on another shard, for any assignment. */
export function boundaryShare(cells: readonly { unit: string; bytes: number; shard: string }[]): number {
  const g = buildCellGraph(cells.map((c) => ({ cell: c.unit, weight: c.bytes })));
  const ids = [...new Set(cells.map((c) => c.shard))];
  const label = Int32Array.from(cells, (c) => ids.indexOf(c.shard));
  return partitionStats(g, label, Math.max(1, ids.length)).boundaryShare;
}

/**
 * Region names for cells new to the mapping: breadth-first from every named cell, through
 * neighbours on the same proposed shard, so a name never crosses a shard border or a gap without data.
 */
function spreadRegions(cells: readonly { unit: string; bytes: number }[], assignment: Map<string, string>, mapped: Map<string, CellMapping>): Map<string, string> {
  const g = buildCellGraph(cells.map((c) => ({ cell: c.unit, weight: c.bytes })));
  const region = g.cells.map((c) => mapped.get(c)?.region);
  const queue = region.flatMap((r, i) => (r ? [i] : []));
  for (let q = 0; q < queue.length; q++) {
    const i = queue[q]!;
    for (let k = g.start[i]!; k < g.start[i + 1]!; k++) {
      const j = g.nbr[k]!;
      if (region[j] === undefined && assignment.get(g.cells[j]!) === assignment.get(g.cells[i]!)) {
        region[j] = region[i];
        queue.push(j);
      }
    }
  }
  return new Map(g.cells.flatMap((c, i) => (region[i] ? [[c, region[i]!] as const] : [])));
}
