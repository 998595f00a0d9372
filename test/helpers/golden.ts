/** Golden vectors of the routing functions, shared by the library's tests and the catalog SQL functions' tests. */

/** jumpHash(key, i + 1) for i = 0…: the table published with dgryski/go-jump (the paper's reference C++). */
export const JUMP_TABLE: readonly [bigint, readonly number[]][] = [
  [0n, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]],
  [1n, [0, 0, 0, 0, 0, 0, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 17, 17]],
  [0xdeadbeefn, [0, 1, 2, 3, 3, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 16, 16, 16]],
  [0x0ddc0ffeebadf00dn, [0, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 15, 15, 15, 15]],
];

/** [key, buckets, bucket] from ClickHouse's jumpConsistentHash, the last key above 2^63. */
export const JUMP_POINTS: readonly [bigint, number, number][] = [
  [1n, 1, 0],
  [42n, 57, 43],
  [256n, 1024, 520],
  [3735883980n, 666, 361],
  [16045690984833335023n, 255, 237],
];
