import type pg from 'pg';
import { withTransaction } from '../db/connect.js';
import { followFlip } from '../catalog/held-routes.js';

/**
 * The steps of a move, in order. A moves row holds the last step that completed. `started` is
 * journaled before any fence is set, so a crash can never leave a fence the journal does not know.
 * STEPS is the offline move (the unit fenced for its whole copy); ONLINE_STEPS the online one
 * (online.ts): the target fenced and proven empty, the copy and the stream while writes go on,
 * the source fenced only for the final catch-up, then the unit opened on the new shard before the
 * old copy is deleted. The two lists share only steps after which either order of the remaining
 * steps completes the move (started, verified, flipped), so a journal row says which list it is on.
 */
export const STEPS = ['started', 'fenced', 'copied', 'verified', 'flipped', 'deleted', 'lifted'] as const;
export const ONLINE_STEPS = ['started', 'target-fenced', 'streaming', 'caught-up', 'verified', 'flipped', 'opened', 'purged'] as const;
export type Step = (typeof STEPS)[number] | (typeof ONLINE_STEPS)[number];

/** Whether a journaled step belongs to the online list only (a move resumed there goes on online). */
export const isOnlineStep = (s: Step): boolean => !(STEPS as readonly string[]).includes(s);
export const isOfflineStep = (s: Step): boolean => !(ONLINE_STEPS as readonly string[]).includes(s);

export interface MoveRow {
  unit: string;
  from: string;
  to: string;
  step: Step;
}

export type FaultOnly = 'fencing' | 'slot' | 'copy' | 'stream' | 'proving' | 'source-fencing' | 'proved';

export async function movesInFlight(c: pg.ClientBase): Promise<MoveRow[]> {
  const r = await c.query(`SELECT unit, from_shard, to_shard, step FROM shardctl.moves ORDER BY started_at, unit`);
  return r.rows.map((m) => ({ unit: m.unit, from: m.from_shard, to: m.to_shard, step: m.step }));
}

export async function journalStep(c: pg.ClientBase, runId: number, m: { unit: string; from: string; to: string }, step: Step): Promise<void> {
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
 * Test-only fault injection: SHARDCTL_FAULT_AFTER=<step> kills this process (SIGKILL, no cleanup)
 * right after that step is journaled, to prove a rerun completes the move; `fencing` kills after
 * the fences are set, before `fenced` is journaled; the online move adds points inside its steps
 * (`slot`, `copy`, `stream`, `proving`, `source-fencing`, `proved`: after the slot is created, after
 * the copy committed, after the stream applied a first batch, after the rows changed so far were
 * proven while writes go on, after the source is fenced, after the rows changed since were proven
 * inside the fence).
 */
export function faultPoint(step: Step | FaultOnly): void {
  if (process.env.SHARDCTL_FAULT_AFTER === step) process.kill(process.pid, 'SIGKILL');
}
