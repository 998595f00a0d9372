import { onBoundary, type CellGraph } from './cell-graph.js';

export interface RefineRules {
  /** shard count: labels are 0..shards-1 */
  readonly shards: number;
  /** a shard may not hold more than cap weight (mean · allowed imbalance) */
  readonly cap: number;
  /** where each cell is now (-1: nowhere yet); moving a cell away from it costs a little */
  readonly origin: Int32Array;
  /** cells that keep their label */
  readonly fixed: Uint8Array;
  /** shards that take no cell they do not hold already */
  readonly closed: readonly boolean[];
}

/** Overflow outweighs boundary: balance first, then locality. */
const OVERFLOW_COST = 1000;
/** Moving a cell costs 5% of its weight, so a move must buy a real boundary gain (few cells move). */
const MOVE_COST = 0.05;
const MAX_PASSES = 400;

/**
 * Boundary refinement that keeps balance: moves single cells to a neighbouring shard while that
 * lowers boundary weight + overflow above the cap (weighted far higher) + a small cost per moved
 * weight. Every move strictly lowers that sum, so it ends; a shard with no neighbour to shed onto
 * (an island) sheds its cheapest cells onto the lightest shard. `label` is refined in place.
 */
export function refine(g: CellGraph, label: Int32Array, rules: RefineRules): void {
  const loads = new Array<number>(rules.shards).fill(0);
  for (let i = 0; i < label.length; i++) loads[label[i]!]! += g.weight[i]!;
  for (let round = 0; round < 3; round++) {
    for (let pass = 0; pass < MAX_PASSES; pass++) if (!localPass(g, label, loads, rules)) break;
    if (!shedOverflow(g, label, loads, rules)) break;
  }
}

function localPass(g: CellGraph, label: Int32Array, loads: number[], rules: RefineRules): boolean {
  let moved = false;
  for (let i = 0; i < label.length; i++) {
    if (rules.fixed[i] || !onBoundary(g, label, i)) continue;
    const s = label[i]!;
    let bestGain = 1e-9 * (g.weight[i]! + 1);
    let bestTo = -1;
    for (let k = g.start[i]!; k < g.start[i + 1]!; k++) {
      const t = label[g.nbr[k]!]!;
      if (t === s || t === bestTo || !may(rules, i, t)) continue;
      const gain = -delta(g, label, loads, rules, i, t);
      if (gain > bestGain) {
        bestGain = gain;
        bestTo = t;
      }
    }
    if (bestTo >= 0) {
      move(g, label, loads, i, bestTo);
      moved = true;
    }
  }
  return moved;
}

/** Moves cells off shards above the cap onto the lightest shard that may take them; true if any moved. */
function shedOverflow(g: CellGraph, label: Int32Array, loads: number[], rules: RefineRules): boolean {
  let moved = false;
  for (let s = 0; s < rules.shards; s++) {
    if (loads[s]! <= rules.cap) continue;
    const mine: { i: number; cost: number }[] = [];
    for (let i = 0; i < label.length; i++) {
      if (label[i] !== s || rules.fixed[i] || g.weight[i] === 0) continue;
      mine.push({ i, cost: boundaryDelta(g, label, i, lightest(loads, rules, i, s)) / g.weight[i]! });
    }
    mine.sort((a, b) => a.cost - b.cost || a.i - b.i);
    for (const { i } of mine) {
      if (loads[s]! <= rules.cap) break;
      const t = lightest(loads, rules, i, s);
      if (t < 0 || loads[t]! + g.weight[i]! > rules.cap) continue;
      move(g, label, loads, i, t);
      moved = true;
    }
  }
  return moved;
}

function lightest(loads: number[], rules: RefineRules, i: number, not: number): number {
  let best = -1;
  for (let t = 0; t < rules.shards; t++) if (t !== not && may(rules, i, t) && (best < 0 || loads[t]! < loads[best]!)) best = t;
  return best;
}

const may = (rules: RefineRules, i: number, t: number) => !rules.closed[t] || rules.origin[i] === t;

function move(g: CellGraph, label: Int32Array, loads: number[], i: number, t: number): void {
  loads[label[i]!]! -= g.weight[i]!;
  loads[t]! += g.weight[i]!;
  label[i] = t;
}

/** Change of the objective if cell i moved to shard t. */
function delta(g: CellGraph, label: Int32Array, loads: number[], rules: RefineRules, i: number, t: number): number {
  const s = label[i]!;
  const w = g.weight[i]!;
  const over = (x: number) => Math.max(0, x - rules.cap);
  const overflow = over(loads[s]! - w) - over(loads[s]!) + over(loads[t]! + w) - over(loads[t]!);
  const o = rules.origin[i]!;
  const moveCost = o < 0 ? 0 : (t !== o ? MOVE_COST * w : 0) - (s !== o ? MOVE_COST * w : 0);
  return boundaryDelta(g, label, i, t) + OVERFLOW_COST * overflow + moveCost;
}

/** Change of boundary weight if cell i moved to shard t: only i and its neighbours can change. */
function boundaryDelta(g: CellGraph, label: Int32Array, i: number, t: number): number {
  if (t < 0) return 0;
  const s = label[i]!;
  const before = localBoundary(g, label, i);
  label[i] = t;
  const after = localBoundary(g, label, i);
  label[i] = s;
  return after - before;
}

function localBoundary(g: CellGraph, label: Int32Array, i: number): number {
  let b = onBoundary(g, label, i) ? g.weight[i]! : 0;
  for (let k = g.start[i]!; k < g.start[i + 1]!; k++) {
    const j = g.nbr[k]!;
    if (onBoundary(g, label, j)) b += g.weight[j]!;
  }
  return b;
}
