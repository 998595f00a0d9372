const MASK64 = (1n << 64n) - 1n;
const TWO_31 = 2147483648; // 2^31 as a double
const TWO_32 = 4294967296;
// the paper's multiplier 2862933555777941757 = 0x27bb2ee687b0b0fd, as 32-bit halves
const M_HI = 0x27bb2ee6;
const M_LO = 0x87b0b0fd;

/**
 * Jump consistent hash (Lamping & Veach 2014, arXiv 1406.2294), exactly the paper's reference C++:
 *
 *   key = key * 2862933555777941757 + 1            (mod 2^64)
 *   j   = (b + 1) * (double(1 << 31) / double((key >> 33) + 1))   (IEEE doubles, then truncated)
 *
 * `key >> 33` is below 2^31, so it converts to a double exactly; the rest is double arithmetic in the
 * paper's order. Bucket i is the i-th shard in config order.
 *
 * @example jumpHash(0xdeadbeefn, 5) === 3
 */
export function jumpHash(key: bigint, buckets: number): number {
  checkBuckets(buckets);
  if (key < 0n || key > MASK64) throw new RangeError('key must be an unsigned 64-bit integer');
  return jumpHash32(Number(key >> 32n), Number(key & 0xffffffffn), buckets);
}

/**
 * `jumpHash` of the key hi·2^32 + lo (both unsigned 32-bit), without BigInt: the 64-bit multiply is
 * done in 32-bit halves whose every intermediate is an exact double or an Int32 (Math.imul), so the
 * result is the paper's bit for bit (test/unit/routing.test.ts checks it against a BigInt reference).
 * The router calls it once per tenant; `buckets` is the caller's to check.
 */
export function jumpHash32(hi: number, lo: number, buckets: number): number {
  let b = -1;
  let j = 0;
  while (j < buckets) {
    b = j;
    // (hi, lo) = (hi, lo) * (M_HI, M_LO) + 1 mod 2^64: the high word is the high half of lo·M_LO plus
    // the low halves of the cross products; the low word is lo·M_LO mod 2^32
    const h = (mulHigh(lo, M_LO) + Math.imul(lo, M_HI) + Math.imul(hi, M_LO)) >>> 0;
    const l = Math.imul(lo, M_LO) >>> 0;
    lo = (l + 1) >>> 0;
    hi = lo === 0 ? (h + 1) >>> 0 : h;
    j = Math.trunc((b + 1) * (TWO_31 / ((hi >>> 1) + 1))); // key >> 33 is the high word >> 1
  }
  return b;
}

export function checkBuckets(buckets: number): void {
  if (!Number.isInteger(buckets) || buckets < 1 || buckets > 2 ** 31 - 1) {
    throw new RangeError(`buckets must be an integer from 1 to 2^31-1, got ${buckets}`);
  }
}

/** floor(a·b / 2^32) mod 2^32 of two unsigned 32-bit numbers, from 16-bit halves (each partial sum < 2^53). */
function mulHigh(a: number, b: number): number {
  const a1 = a >>> 16;
  const a0 = a & 0xffff;
  const b1 = b >>> 16;
  const b0 = b & 0xffff;
  const t = (a1 * b0 + a0 * b1) * 65536 + a0 * b0; // < 2^50: exact
  return (a1 * b1 + Math.floor(t / TWO_32)) >>> 0;
}
