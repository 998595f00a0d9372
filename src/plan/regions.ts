import { bisect } from './bisect.js';
import { buildCellGraph, partitionStats, type CellGraph, type PartitionStats } from './cell-graph.js';
import { refine } from './refine.js';

import type { CapacityStatus } from '../config/capacity.js';

export type { CapacityStatus };

export interface RegionInput {
  /** the cells that hold data, with their weight (bytes or rows) */
  readonly cells: readonly { cell: string; weight: number }[];
  /** the shards to propose onto */
  readonly shards: readonly string[];
  /** where each cell routes now (mapping, else the default shard) */
  readonly current: (cell: string) => string;
  /** capacity status of a cell in the current mapping */
  readonly status?: (cell: string) => CapacityStatus | undefined;
  /** largest acceptable max/mean load (default 1.10) */
  readonly maxImbalance?: number;
  /** boundary share that is good enough to prefer moving fewer cells (default 0.10) */
  readonly maxBoundary?: number;
}

export interface RegionProposal {
  /** cell → shard for every input cell */
  readonly assignment: Map<string, string>;
  readonly stats: PartitionStats;
  /** input cells whose shard changes, and their weight */
  readonly moved: { cells: number; weight: number };
  /** the strategy that won: grown from the current mapping, or cut afresh and labelled to match it */
  readonly from: 'current' | 'bisection';
}

/**
 * A locality-preserving assignment of H3 cells to shards: neighbouring cells land on one shard in
 * contiguous regions while volume stays balanced. Two starts are refined and compared:
 *  - the current mapping itself (few cells move when it is already regional);
 *  - a recursive coordinate bisection (compact regions, straight cuts), whose regions are named after
 *    the shard they overlap most, so cells stay where they are wherever possible.
 * Each start is refined by moving boundary cells (see `refine`). Of the results within the imbalance
 * limit, the one moving the least weight among those at or under `maxBoundary` wins, else the one with
 * the least boundary.
 *
 * Capacity status: `read-only` and `full` cells keep their shard; a shard holding a `full` cell takes
 * no cell it does not hold already.
 *
 * @example proposeRegions({ cells, shards: ['s0', 's1'], current: (c) => router.shardForCell(c) })
 */
export function proposeRegions(input: RegionInput): RegionProposal {
  const k = input.shards.length;
  const maxImbalance = input.maxImbalance ?? 1.1;
  const g = buildCellGraph(input.cells);
  const n = g.cells.length;
  const labelOf = new Map(input.shards.map((s, i) => [s, i]));
  const origin = Int32Array.from(g.cells, (c) => labelOf.get(input.current(c)) ?? -1);
  const fixed = Uint8Array.from(g.cells, (c, i) => (origin[i]! >= 0 && (input.status?.(c) ?? 'active') !== 'active' ? 1 : 0));
  const closed = input.shards.map(() => false);
  g.cells.forEach((c, i) => {
    if (origin[i]! >= 0 && input.status?.(c) === 'full') closed[origin[i]!] = true;
  });
  // aim halfway between perfect balance and the limit: refinement needs slack to straighten borders
  const rules = { shards: k, cap: (g.total / k) * (1 + (maxImbalance - 1) / 2), origin, fixed, closed };

  const starts: { from: RegionProposal['from']; label: Int32Array }[] = [{ from: 'current', label: grownFromCurrent(g, origin, k) }];
  for (const axis of [0, 1] as const) starts.push({ from: 'bisection', label: bisected(g, origin, fixed, closed, axis) });

  const results = starts.map(({ from, label }) => {
    refine(g, label, rules);
    const stats = partitionStats(g, label, k);
    let cells = 0;
    let weight = 0;
    for (let i = 0; i < n; i++) {
      if (label[i] !== origin[i]) {
        cells++;
        weight += g.weight[i]!;
      }
    }
    return { from, label, stats, moved: { cells, weight } };
  });
  const best = pick(results, maxImbalance, input.maxBoundary ?? 0.1);
  return {
    assignment: new Map(g.cells.map((c, i) => [c, input.shards[best.label[i]!]!])),
    stats: best.stats,
    moved: best.moved,
    from: best.from,
  };
}

type Result = { from: RegionProposal['from']; label: Int32Array; stats: PartitionStats; moved: { cells: number; weight: number } };

function pick(results: Result[], maxImbalance: number, maxBoundary: number): Result {
  const balanced = results.filter((r) => r.stats.imbalance <= maxImbalance + 1e-9);
  if (!balanced.length) return [...results].sort((a, b) => a.stats.imbalance - b.stats.imbalance)[0]!;
  const good = balanced.filter((r) => r.stats.boundaryShare <= maxBoundary);
  if (good.length) return good.sort((a, b) => a.moved.weight - b.moved.weight || a.stats.boundaryShare - b.stats.boundaryShare)[0]!;
  return balanced.sort((a, b) => a.stats.boundaryShare - b.stats.boundaryShare)[0]!;
}

/** The current labels; cells routed to a shard outside the proposal join a labelled neighbour (BFS), else shard 0. */
function grownFromCurrent(g: CellGraph, origin: Int32Array, k: number): Int32Array {
  const label = Int32Array.from(origin);
  const queue: number[] = [];
  for (let i = 0; i < label.length; i++) if (label[i]! >= 0) queue.push(i);
  for (let q = 0; q < queue.length; q++) {
    const i = queue[q]!;
    for (let e = g.start[i]!; e < g.start[i + 1]!; e++) {
      const j = g.nbr[e]!;
      if (label[j]! < 0) {
        label[j] = label[i]!;
        queue.push(j);
      }
    }
  }
  for (let i = 0; i < label.length; i++) if (label[i]! < 0) label[i] = i % k;
  return label;
}

/**
 * Cells that must stay (fixed, or on a closed shard) keep their label; the rest are bisected onto the
 * open shards, and each bisection region takes the name of the shard it overlaps most.
 */
function bisected(g: CellGraph, origin: Int32Array, fixed: Uint8Array, closed: readonly boolean[], axis: 0 | 1): Int32Array {
  const k = closed.length;
  const label = new Int32Array(g.cells.length).fill(-1);
  const free: number[] = [];
  for (let i = 0; i < label.length; i++) {
    const o = origin[i]!;
    if (o >= 0 && (fixed[i] || closed[o])) label[i] = o;
    else free.push(i);
  }
  const open = closed.flatMap((c, s) => (c ? [] : [s]));
  if (!open.length) return label.map((l, i) => (l >= 0 ? l : i % k));
  bisect(g, free, open.map((_, group) => ({ label: group, target: 1 })), label, axis);
  // overlap[group][o] = weight of the group's cells now on open shard o
  const overlap = open.map(() => open.map(() => 0));
  for (const i of free) {
    const o = open.indexOf(origin[i]!);
    if (o >= 0) overlap[label[i]!]![o]! += g.weight[i]!;
  }
  const perm = bestPermutation(overlap);
  for (const i of free) label[i] = open[perm[label[i]!]!]!;
  return label;
}

/** group → shard maximising the overlapping weight: exhaustive up to 8 shards, greedy beyond. */
function bestPermutation(overlap: number[][]): number[] {
  const m = overlap.length;
  if (m <= 8) {
    let best: number[] = [];
    let bestScore = -1;
    const perm: number[] = [];
    const used = new Array<boolean>(m).fill(false);
    const walk = (g: number, score: number) => {
      if (g === m) {
        if (score > bestScore) [bestScore, best] = [score, [...perm]];
        return;
      }
      for (let s = 0; s < m; s++) {
        if (used[s]) continue;
        used[s] = true;
        perm.push(s);
        walk(g + 1, score + overlap[g]![s]!);
        perm.pop();
        used[s] = false;
      }
    };
    walk(0, 0);
    return best;
  }
  const pairs = overlap.flatMap((row, g) => row.map((w, s) => ({ g, s, w }))).sort((a, b) => b.w - a.w);
  const perm = new Array<number>(m).fill(-1);
  const taken = new Set<number>();
  for (const p of pairs) {
    if (perm[p.g]! >= 0 || taken.has(p.s)) continue;
    perm[p.g] = p.s;
    taken.add(p.s);
  }
  return perm;
}
