import { createRequire } from 'node:module';

type H3 = typeof import('h3-js');
let loaded: H3 | undefined;
/**
 * h3-js, loaded on the first cell computed: starting its WebAssembly module costs ~0.15 s of CPU, which
 * a jump config (and `shardctl --version`) never needs. require() is synchronous, so routing stays
 * synchronous; h3-js is CommonJS (its package main), so this is the instance `import 'h3-js'` gets.
 */
const h3 = (): H3 => (loaded ??= createRequire(import.meta.url)('h3-js') as H3);

export interface CellOptions {
  /** Resolution the point is indexed at before taking the parent (default 12, as the seed does). */
  indexResolution?: number;
  /** Resolution of the cell that decides the shard (default 3). */
  shardResolution?: number;
}

export const DEFAULT_INDEX_RESOLUTION = 12;
export const DEFAULT_SHARD_RESOLUTION = 3;

/**
 * The H3 cell (hex string) that decides a location's shard: the point is indexed at the index
 * resolution, then the parent at the shard resolution is taken. This is deliberately NOT
 * `latLngToCell(lat, lng, 3)`: the two disagree for about 6% of points near cell edges, and the
 * seed (and so the data already placed) uses the parent of the fine cell.
 *
 * @example shardCell(37.5665, 126.978) === '8330e1fffffffff'
 */
export function shardCell(lat: number, lng: number, opts: CellOptions = {}): string {
  const indexRes = opts.indexResolution ?? DEFAULT_INDEX_RESOLUTION;
  const shardRes = opts.shardResolution ?? DEFAULT_SHARD_RESOLUTION;
  if (!Number.isFinite(lat) || lat < -90 || lat > 90) throw new RangeError(`latitude ${lat} is outside -90..90`);
  if (!Number.isFinite(lng) || lng < -180 || lng > 180) throw new RangeError(`longitude ${lng} is outside -180..180`);
  return parentOf(h3().latLngToCell(lat, lng, indexRes), shardRes);
}

/**
 * cellToParent on the hex string, without the round trip through h3-js's WebAssembly heap when the
 * digits below `res` fill whole hex characters (res 3, 7, 11: 36, 24, 12 bits): the parent then is
 * the same string with the resolution nibble set to `res` and those characters set to f (every
 * unused digit is 7, all ones). About a third of shardCell's time at the default resolutions.
 * Equal to cellToParent for every valid cell (tested on random points).
 */
function parentOf(cell: string, res: number): string {
  const bits = 3 * (15 - res);
  if (cell.length !== 15 || bits % 4 !== 0 || parseInt(cell[1]!, 16) < res) return h3().cellToParent(cell, res);
  const chars = bits / 4;
  return `${cell[0]}${res.toString(16)}${cell.slice(2, 15 - chars)}${'f'.repeat(chars)}`;
}

/** The parent at `shardRes` of any valid H3 cell at that resolution or finer. */
export function parentCell(cell: string, shardRes: number): string {
  const res = h3().getResolution(cell);
  if (res < shardRes) throw new RangeError(`cell ${cell} is resolution ${res}, coarser than the shard resolution ${shardRes}`);
  return res === shardRes ? cell : h3().cellToParent(cell, shardRes);
}

export function isCell(cell: string): boolean {
  return h3().isValidCell(cell);
}

/** H3 index as the bigint a `bigint` column stores (two's complement never matters: the top bit of an H3 index is 0). */
export const cellToBigInt = (cell: string): bigint => BigInt(`0x${cell}`);
export const bigIntToCell = (v: bigint): string => v.toString(16);

const DIGIT_BITS = 3n;
const RES_SHIFT = 52n;
const RES_MASK = 0xfn << RES_SHIFT;

/**
 * The inclusive integer range that holds every descendant of `cell` at resolution `childRes`.
 * An H3 index stores one 3-bit digit per resolution (1..15), unused digits set to 7. Descendants
 * share the parent's digits and vary the digits below it over 0..6, so the smallest has them all 0
 * and the largest all 6; the bits above stay fixed. Any valid index of that resolution inside the
 * range descends from `cell`, which lets a bigint index column be filtered with BETWEEN on an index.
 */
export function descendantRange(cell: string, childRes: number): { lo: bigint; hi: bigint } {
  const res = h3().getResolution(cell);
  if (childRes < res || childRes > 15) throw new RangeError(`child resolution ${childRes} must be ${res}..15`);
  const base = (cellToBigInt(cell) & ~RES_MASK) | (BigInt(childRes) << RES_SHIFT);
  let lo = base;
  let hi = base;
  for (let r = res + 1; r <= childRes; r++) {
    const shift = BigInt(15 - r) * DIGIT_BITS;
    const clear = ~(7n << shift);
    lo = lo & clear; // digit 0
    hi = (hi & clear) | (6n << shift); // digit 6
  }
  return { lo, hi };
}
