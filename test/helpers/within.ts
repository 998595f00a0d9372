/**
 * `p`'s value if it settles within `ms`, else undefined. The timer is cleared when `p` wins: a
 * pending timer (a bare `Promise.race([p, sleep(60_000)])`) keeps the test file's process alive
 * after its last test, and `node --test` holds that file's concurrency slot until the process exits.
 */
export async function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let clear = () => {};
  try {
    return await Promise.race([
      p,
      new Promise<undefined>((r) => {
        const timer = setTimeout(() => r(undefined), ms);
        clear = () => clearTimeout(timer);
      }),
    ]);
  } finally {
    clear();
  }
}
