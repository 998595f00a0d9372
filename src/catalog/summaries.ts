import type pg from 'pg';

/**
 * Reads of the catalog for showing what the commands did (the demo prints them): a unit's shard,
 * the largest unit, the runs recorded, the placements per shard. Each reads; none locks or creates.
 */

/** The shard the catalog places `unit` on; undefined when it is not placed. */
export async function placedShard(c: pg.ClientBase, unit: string): Promise<string | undefined> {
  const r = await c.query<{ shard: string }>(`SELECT shard FROM shardctl.placements WHERE unit = $1`, [unit]);
  return r.rows[0]?.shard;
}

/** The placed unit with the most bytes (ties: the first by name); undefined when none is placed. */
export async function largestUnit(c: pg.ClientBase): Promise<string | undefined> {
  const r = await c.query<{ unit: string }>(`SELECT unit FROM shardctl.placements ORDER BY bytes DESC, unit LIMIT 1`);
  return r.rows[0]?.unit;
}

/** Every recorded run's command and summary, oldest first. */
export async function runSummaries(c: pg.ClientBase): Promise<{ command: string; summary: Record<string, unknown> | null }[]> {
  return (await c.query(`SELECT command, summary FROM shardctl.runs ORDER BY id`)).rows;
}

/** Per shard: how many units are placed there and up to `sample` of them (shortest names first). */
export async function placementsPerShard(c: pg.ClientBase, sample: number): Promise<{ shard: string; units: number; sample: string[] }[]> {
  const r = await c.query<{ shard: string; n: string; sample: string[] }>(
    `SELECT shard, count(*) AS n, (array_agg(unit ORDER BY length(unit), unit))[1:$1] AS sample FROM shardctl.placements GROUP BY shard ORDER BY shard`,
    [sample],
  );
  return r.rows.map((x) => ({ shard: x.shard, units: Number(x.n), sample: x.sample }));
}
