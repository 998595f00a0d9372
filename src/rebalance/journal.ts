import type pg from 'pg';
import { finishMove, flipPlacement, journalStep as journalMoveStep, readMoves, type JournalRow } from '../catalog/moves.js';

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

export type MoveRow = JournalRow<Step>;

/**
 * Where a move may be watched (RebalanceOptions.onMovePoint): right after each step is journaled,
 * and at points inside steps: `fencing` after the fences are set, before `fenced` is journaled; the
 * online move's `slot`, `copy`, `stream`, `proving`, `source-fencing`, `proved` (after the slot is
 * created, after the copy committed, after the stream applied a batch, after the rows changed so far
 * were proven while writes go on, after the source is fenced, after the rows changed since were
 * proven inside the fence). Tests kill the process
 * there to prove a rerun completes the move.
 */
export type MovePoint = Step | 'fencing' | 'slot' | 'copy' | 'stream' | 'proving' | 'source-fencing' | 'proved';

/** Called synchronously at each MovePoint of a move. */
export type MovePointHook = (point: MovePoint, move: { unit: string; from: string; to: string }) => void;

export const movesInFlight = (c: pg.ClientBase): Promise<MoveRow[]> => readMoves<Step>(c);

/**
 * The journal's SQL is the catalog's (catalog/moves.ts); a step is journaled as its name, for every
 * move of a group at once (an online group also names its stream, so a rerun finds it).
 */
export const journalStep = (c: pg.ClientBase, runId: number, moves: readonly { unit: string; from: string; to: string }[], step: Step, stream?: string): Promise<void> =>
  journalMoveStep(c, runId, moves, step, stream);
export { finishMove, flipPlacement };
