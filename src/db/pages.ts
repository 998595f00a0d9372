import type pg from 'pg';

/** rows per round trip: a page of result rows is soon garbage, where a million would be held at once */
export const PAGE_ROWS = 50_000;

/**
 * Runs `text` through a cursor in a read-only transaction of its own (one snapshot for every page)
 * and hands each page of rows, as arrays, to `onPage`. For results of a million rows that are folded
 * into something smaller as they come. `session` must not be inside a transaction.
 */
export async function forEachPage<R extends unknown[]>(
  session: pg.ClientBase,
  text: string,
  onPage: (rows: R[]) => void,
  opts: { page?: number; types?: pg.CustomTypesConfig } = {},
): Promise<void> {
  const page = opts.page ?? PAGE_ROWS;
  await session.query('BEGIN READ ONLY');
  try {
    await session.query(`DECLARE shardctl_pages NO SCROLL CURSOR FOR ${text}`);
    for (;;) {
      const got = await session.query<R>({ text: `FETCH ${page} FROM shardctl_pages`, rowMode: 'array', types: opts.types });
      onPage(got.rows);
      if (got.rows.length < page) break;
    }
    await session.query('COMMIT');
  } catch (e) {
    await session.query('ROLLBACK').catch(() => undefined);
    throw e;
  }
}
