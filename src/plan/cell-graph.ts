import { cellToLatLng, gridDisk } from 'h3-js';

/**
 * The neighbour graph of the cells that hold data, in flat arrays (index i is `cells[i]`). Only
 * cells that hold rows are nodes: interactions happen between people, so an empty cell between two
 * shards is no boundary. Built once per proposal; every algorithm step works on indices.
 */
export interface CellGraph {
  readonly cells: readonly string[];
  readonly weight: Float64Array;
  /** neighbours of i: nbr[start[i] .. start[i+1]) */
  readonly start: Int32Array;
  readonly nbr: Int32Array;
  /** cell centres, degrees */
  readonly lat: Float64Array;
  readonly lng: Float64Array;
  readonly total: number;
}

export function buildCellGraph(units: readonly { cell: string; weight: number }[]): CellGraph {
  const cells = units.map((u) => u.cell);
  const index = new Map(cells.map((c, i) => [c, i]));
  if (index.size !== cells.length) throw new RangeError('a cell is listed twice');
  const n = cells.length;
  const weight = new Float64Array(n);
  const lat = new Float64Array(n);
  const lng = new Float64Array(n);
  const start = new Int32Array(n + 1);
  const nbr: number[] = [];
  let total = 0;
  for (let i = 0; i < n; i++) {
    weight[i] = Math.max(0, units[i]!.weight);
    total += weight[i]!;
    const [la, ln] = cellToLatLng(cells[i]!);
    lat[i] = la;
    lng[i] = ln;
    start[i] = nbr.length;
    for (const d of gridDisk(cells[i]!, 1)) {
      const j = index.get(d);
      if (j !== undefined && j !== i) nbr.push(j);
    }
  }
  start[n] = nbr.length;
  return { cells, weight, start, nbr: Int32Array.from(nbr), lat, lng, total };
}

/** True when cell i has a neighbour holding data on another shard. */
export function onBoundary(g: CellGraph, label: ArrayLike<number>, i: number): boolean {
  for (let k = g.start[i]!; k < g.start[i + 1]!; k++) if (label[g.nbr[k]!] !== label[i]) return true;
  return false;
}

export interface PartitionStats {
  /** weight per shard (index = label) */
  readonly loads: number[];
  readonly cells: number[];
  /** max/mean of the loads (1 is perfect balance) */
  readonly imbalance: number;
  /** share of the weight whose cell borders a data-holding cell on another shard (0..1) */
  readonly boundaryShare: number;
}

/** Loads, imbalance and boundary share of a labelling onto `shards` shards (every label in 0..shards-1). */
export function partitionStats(g: CellGraph, label: ArrayLike<number>, shards: number): PartitionStats {
  const loads = new Array<number>(shards).fill(0);
  const cells = new Array<number>(shards).fill(0);
  let boundary = 0;
  for (let i = 0; i < g.cells.length; i++) {
    loads[label[i]!]! += g.weight[i]!;
    cells[label[i]!]!++;
    if (onBoundary(g, label, i)) boundary += g.weight[i]!;
  }
  const mean = g.total / shards;
  return {
    loads,
    cells,
    imbalance: mean > 0 ? Math.max(...loads) / mean : 1,
    boundaryShare: g.total > 0 ? boundary / g.total : 0,
  };
}
