const MASK64 = (1n << 64n) - 1n;
const MULTIPLIER = 2862933555777941757n;
const TWO_31 = 2147483648; // 2^31 as a double

/**
 * Jump consistent hash (Lamping & Veach 2014, arXiv 1406.2294), exactly the paper's reference C++:
 *
 *   key = key * 2862933555777941757 + 1            (mod 2^64, hence BigInt: a Number loses bits above 2^53)
 *   j   = (b + 1) * (double(1 << 31) / double((key >> 33) + 1))   (IEEE doubles, then truncated)
 *
 * `key >> 33` is below 2^31, so it converts to a double exactly; the rest is double arithmetic in the
 * paper's order. Bucket i is the i-th shard in config order.
 *
 * @example jumpHash(0xdeadbeefn, 5) === 3
 */
export function jumpHash(key: bigint, buckets: number): number {
  if (!Number.isInteger(buckets) || buckets < 1 || buckets > 2 ** 31 - 1) {
    throw new RangeError(`buckets must be an integer from 1 to 2^31-1, got ${buckets}`);
  }
  if (key < 0n || key > MASK64) throw new RangeError('key must be an unsigned 64-bit integer');
  let b = -1;
  let j = 0;
  let k = key;
  while (j < buckets) {
    b = j;
    k = (k * MULTIPLIER + 1n) & MASK64;
    j = Math.trunc((b + 1) * (TWO_31 / (Number(k >> 33n) + 1)));
  }
  return b;
}
