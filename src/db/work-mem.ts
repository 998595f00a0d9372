import type pg from 'pg';

/**
 * Raises work_mem for the current transaction to at least `bytes` (never lowers what the role or
 * server set). A grouped query over a batch of tens of thousands of units keeps a group per unit:
 * at the default 4MB its hash aggregate spills to disk, a server's CPU spent on writing and reading
 * the spill (issue 26). SET LOCAL: it ends with the transaction.
 */
export async function raiseWorkMem(c: pg.ClientBase, bytes: number): Promise<void> {
  await c.query(
    `SELECT set_config('work_mem', (greatest(pg_size_bytes(current_setting('work_mem')), $1::bigint) / 1024)::text || 'kB', true)`,
    [Math.ceil(bytes)],
  );
}
