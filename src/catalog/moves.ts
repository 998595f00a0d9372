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
  /** an online move: the slot and publication its group streams from on `from` (catalog/schema.ts: the moves of one group share it) */
  stream?: string;
}

export async function readMoves<S extends string>(c: pg.ClientBase): Promise<JournalRow<S>[]> {
  const r = await c.query(`SELECT unit, from_shard, to_shard, step, stream FROM shardctl.moves ORDER BY started_at, unit`);
  return r.rows.map((m) => ({ unit: m.unit, from: m.from_shard, to: m.to_shard, step: m.step, ...(m.stream ? { stream: m.stream } : {}) }));
}

type Move = { unit: string; from: string; to: string };

/** The moves of one group reach `step` together, in one statement (`stream`: the group's, for an online move). */
export async function journalStep(c: pg.ClientBase, runId: number, moves: readonly Move[], step: string, stream?: string): Promise<void> {
  await c.query(
    `INSERT INTO shardctl.moves (unit, from_shard, to_shard, step, run_id, stream)
     SELECT u, f, t, $4, $5, $6 FROM unnest($1::text[], $2::text[], $3::text[]) AS x(u, f, t)
     ON CONFLICT (unit) DO UPDATE SET step = EXCLUDED.step, run_id = EXCLUDED.run_id, stream = COALESCE(EXCLUDED.stream, shardctl.moves.stream), updated_at = now()`,
    [moves.map((m) => m.unit), moves.map((m) => m.from), moves.map((m) => m.to), step, runId, stream ?? null],
  );
}

/**
 * Step 4, in one catalog transaction for the whole group: the placements flip, each unit's route
 * follows it (its held route released, or held on `to` when the topology, `wanted`, routes it
 * elsewhere still), and the journal says so, together: one topology version, one NOTIFY.
 */
export async function flipPlacement(c: pg.ClientBase, runId: number, moves: readonly (Move & { wanted: string })[]): Promise<void> {
  await withTransaction(c, async () => {
    for (const m of moves) {
      await c.query(`UPDATE shardctl.placements SET shard = $2, run_id = $3, placed_at = now() WHERE unit = $1`, [m.unit, m.to, runId]);
      await followFlip(c, m.unit, m.to, m.wanted);
    }
    await journalStep(c, runId, moves, 'flipped');
  });
}

export async function finishMove(c: pg.ClientBase, units: readonly string[]): Promise<void> {
  await c.query('DELETE FROM shardctl.moves WHERE unit = ANY($1::text[])', [units]);
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
