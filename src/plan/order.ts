/**
 * `plan`'s assignment order: largest bytes first, ties in UTF-16 code-unit order of the unit (what
 * `<` compares on strings; units are distinct). One comparator sort of a million objects took
 * seconds (bench --fixture plan), mostly in cache misses: each comparison touched two scattered
 * objects. Here the units of each byte size are sorted as 64-bit integers in one typed array (the
 * unit's first characters above, its index below); only units whose first characters tie are then
 * compared as strings.
 */
export function largestFirst<T extends { unit: string; bytes: number }>(items: readonly T[], packLimit = PACK_LIMIT): T[] {
  const groups = new Map<number, T[]>();
  for (const x of items) {
    const g = groups.get(x.bytes);
    if (g) g.push(x);
    else groups.set(x.bytes, [x]);
  }
  const out: T[] = [];
  for (const size of Float64Array.from(groups.keys()).sort().reverse()) {
    const g = groups.get(size)!;
    for (const x of g.length <= packLimit ? byUnit(g) : g.sort(byText)) out.push(x);
  }
  return out;
}

const byText = (a: { unit: string }, b: { unit: string }) => (a.unit < b.unit ? -1 : a.unit > b.unit ? 1 : 0);

// A sort key is prefix · 2^21 + index, below 2^64: 6 characters in base 130 take 42.2 bits.
const CHARS = 6;
const BASE = 130;
const INDEX_BITS = 21;
const PACK_LIMIT = 2 ** INDEX_BITS;
const INDEX_MASK = PACK_LIMIT - 1;
const TWO_11 = 2 ** (32 - INDEX_BITS);
// which 32-bit word of a 64-bit element is the low one (the platform's byte order)
const LO = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 0 : 1;

/**
 * A number that orders like the string's first CHARS code units: each is 1 + its code (ASCII) or
 * 129 (any code unit above ASCII, which then ends the key, the rest 0), 0 past the end. So a shorter
 * prefix comes first and key(a) < key(b) implies a < b; equal keys leave the order to the strings.
 */
export function prefixKey(s: string): number {
  let k = 0;
  for (let i = 0; i < CHARS; i++) {
    const c = i < s.length ? s.charCodeAt(i) : -1;
    if (c > 127) {
      k = k * BASE + 129;
      for (let j = i + 1; j < CHARS; j++) k *= BASE;
      return k;
    }
    k = k * BASE + (c + 1);
  }
  return k;
}

function byUnit<T extends { unit: string }>(g: readonly T[]): T[] {
  const n = g.length;
  const prefix = new Float64Array(n);
  const words = new Uint32Array(2 * n);
  for (let i = 0; i < n; i++) {
    const p = prefixKey(g[i]!.unit);
    prefix[i] = p;
    words[2 * i + LO] = (p % TWO_11) * PACK_LIMIT + i; // exact: every term stays below 2^53
    words[2 * i + 1 - LO] = Math.floor(p / TWO_11);
  }
  new BigUint64Array(words.buffer).sort();
  const index = (i: number) => words[2 * i + LO]! & INDEX_MASK;
  const out = new Array<T>(n);
  for (let i = 0; i < n; i++) out[i] = g[index(i)]!;
  // a run of one prefix is in index order so far: the whole strings decide within it
  for (let i = 0; i < n; ) {
    const p = prefix[index(i)];
    let j = i + 1;
    while (j < n && prefix[index(j)] === p) j++;
    if (j - i > 1) {
      const run = out.slice(i, j).sort(byText);
      for (let k = i; k < j; k++) out[k] = run[k - i]!;
    }
    i = j;
  }
  return out;
}
