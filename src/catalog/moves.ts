import type pg from 'pg';
import { withTransaction } from '../db/connect.js';
import { followFlip } from './held-routes.js';

/**
 * The journal of moves in flight (`shardctl.moves`): one row per unit being moved, holding the last
 * step that completed. The steps themselves and what they mean belong to the mover
 * (rebalance/journal.ts); here the journal is only rows.
 */
export interface JournalRow<S extends string = string> {
  unit: string;
  from: string;
  to: string;
  step: S;
}

export async function readMoves<S extends string>(c: pg.ClientBase): Promise<JournalRow<S>[]> {
  const r = await c.query(`SELECT unit, from_shard, to_shard, step FROM shardctl.moves ORDER BY started_at, unit`);
  return r.rows.map((m) => ({ unit: m.unit, from: m.from_shard, to: m.to_shard, step: m.step }));
}

export async function journalStep(c: pg.ClientBase, runId: number, m: { unit: string; from: string; to: string }, step: string): Promise<void> {
  await c.query(
    `INSERT INTO shardctl.moves (unit, from_shard, to_shard, step, run_id) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (unit) DO UPDATE SET step = EXCLUDED.step, run_id = EXCLUDED.run_id, updated_at = now()`,
    [m.unit, m.from, m.to, step, runId],
  );
}

/**
 * Step 4, in one catalog transaction: the placement flips, the unit's route follows it (its held
 * route released, or held on `to` when the topology, `wanted`, routes it elsewhere still), and the
 * journal says so, together: one topology version, one NOTIFY, for this unit alone.
 */
export async function flipPlacement(c: pg.ClientBase, runId: number, m: { unit: string; from: string; to: string }, wanted: string): Promise<void> {
  await withTransaction(c, async () => {
    await c.query(`UPDATE shardctl.placements SET shard = $2, run_id = $3, placed_at = now() WHERE unit = $1`, [m.unit, m.to, runId]);
    await followFlip(c, m.unit, m.to, wanted);
    await journalStep(c, runId, m, 'flipped');
  });
}

export async function finishMove(c: pg.ClientBase, unit: string): Promise<void> {
  await c.query('DELETE FROM shardctl.moves WHERE unit = $1', [unit]);
}

/**
 * Every shard that may hold rows of `units` now: the placement, plus both ends of a move in flight.
 * Units with neither are absent (the caller routes them).
 */
export async function placedOrMoving(c: pg.ClientBase, units: readonly string[]): Promise<{ unit: string; shard: string }[]> {
  const r = await c.query<{ unit: string; shard: string }>(
    `SELECT unit, shard FROM shardctl.placements WHERE unit = ANY($1::text[])
     UNION SELECT unit, from_shard FROM shardctl.moves WHERE unit = ANY($1::text[])
     UNION SELECT unit, to_shard FROM shardctl.moves WHERE unit = ANY($1::text[])`,
    [units],
  );
  return r.rows;
}
