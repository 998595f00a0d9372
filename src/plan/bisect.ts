import type { CellGraph } from './cell-graph.js';

/**
 * Recursive coordinate bisection: split the cells at the weighted point of one axis into two groups
 * sized for the shards each side gets, then split each group again, until one shard per group.
 * Each cut is a straight line, so every shard starts as one compact region and the boundary is only
 * the cells along the cuts. At each level both axes are tried and the one cutting less weight kept;
 * `firstAxis` forces the first cut (callers try both and refine each).
 *
 * Coordinates are a sinusoidal projection (x = longitude · cos latitude, y = latitude) with the
 * longitude turned so the widest empty meridian band (the Pacific, for people) is the seam.
 *
 * @param free  the cells to place (indices into the graph)
 * @param labels the shard labels to place them on, with the weight each should get
 * @returns label per free cell, written into `out`
 */
export function bisect(g: CellGraph, free: readonly number[], labels: readonly { label: number; target: number }[], out: Int32Array, firstAxis?: 0 | 1): void {
  const xy = project(g, free);
  split(g, free, labels, xy, out, firstAxis);
}

function split(g: CellGraph, cells: readonly number[], labels: readonly { label: number; target: number }[], xy: readonly [Float64Array, Float64Array], out: Int32Array, forceAxis?: 0 | 1): void {
  if (labels.length === 1 || cells.length === 0) {
    for (const i of cells) out[i] = labels[0]!.label;
    return;
  }
  const half = labels.length >> 1;
  const left = labels.slice(0, half);
  const right = labels.slice(half);
  const share = sum(left.map((l) => l.target)) / sum(labels.map((l) => l.target));
  let best: { a: number[]; b: number[]; cut: number } | undefined;
  for (const axis of forceAxis === undefined ? ([0, 1] as const) : [forceAxis]) {
    const v = xy[axis];
    const sorted = [...cells].sort((p, q) => v[p]! - v[q]! || p - q);
    const at = weightedCut(g, sorted, share);
    const a = sorted.slice(0, at);
    const b = sorted.slice(at);
    const cut = cutWeight(g, a, b);
    if (!best || cut < best.cut) best = { a, b, cut };
  }
  split(g, best!.a, left, xy, out);
  split(g, best!.b, right, xy, out);
}

/** The position that puts the weight share closest to `share` before it. */
function weightedCut(g: CellGraph, sorted: readonly number[], share: number): number {
  const total = sum(sorted.map((i) => g.weight[i]!));
  const want = total * share;
  let acc = 0;
  for (let k = 0; k < sorted.length; k++) {
    const w = g.weight[sorted[k]!]!;
    if (acc + w >= want) return want - acc < acc + w - want ? k : k + 1;
    acc += w;
  }
  return sorted.length;
}

/** Weight of the cells of a and b that touch the other side. */
function cutWeight(g: CellGraph, a: readonly number[], b: readonly number[]): number {
  const side = new Int8Array(g.cells.length).fill(-1);
  for (const i of a) side[i] = 0;
  for (const i of b) side[i] = 1;
  let w = 0;
  for (const i of [...a, ...b]) {
    for (let k = g.start[i]!; k < g.start[i + 1]!; k++) {
      const o = side[g.nbr[k]!]!;
      if (o >= 0 && o !== side[i]) {
        w += g.weight[i]!;
        break;
      }
    }
  }
  return w;
}

function project(g: CellGraph, cells: readonly number[]): [Float64Array, Float64Array] {
  const seam = widestGap(cells.map((i) => g.lng[i]!));
  const x = new Float64Array(g.cells.length);
  for (const i of cells) {
    const lng = (((g.lng[i]! - seam) % 360) + 360) % 360;
    x[i] = lng * Math.cos((g.lat[i]! * Math.PI) / 180);
  }
  return [x, Float64Array.from(g.lat)];
}

/** A longitude in the middle of the widest band holding no cell centre. */
function widestGap(lngs: number[]): number {
  if (lngs.length < 2) return -180;
  const s = [...lngs].sort((a, b) => a - b);
  let gap = s[0]! + 360 - s[s.length - 1]!;
  let at = s[s.length - 1]! + gap / 2;
  for (let k = 1; k < s.length; k++) {
    if (s[k]! - s[k - 1]! > gap) {
      gap = s[k]! - s[k - 1]!;
      at = s[k - 1]! + gap / 2;
    }
  }
  return at;
}

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);
