/**
 * The jump hash in BigInt arithmetic, line for line the paper's C++ (the form src/routing/jump.ts had
 * before it moved to 32-bit halves): the reference the fast form is proven against.
 */
export function jumpHashReference(key: bigint, buckets: number): number {
  const mask = (1n << 64n) - 1n;
  let b = -1;
  let j = 0;
  let k = key;
  while (j < buckets) {
    b = j;
    k = (k * 2862933555777941757n + 1n) & mask;
    j = Math.trunc((b + 1) * (2147483648 / (Number(k >> 33n) + 1)));
  }
  return b;
}
