import type pg from 'pg';
import { lsnText, type Lsn } from '../db/lsn.js';
/** A change stream's replication slot and publication on its source. */
export interface StreamNames {
  readonly slot: string;
  readonly publication: string;
}

/** The catalog's record of an online migration (shardctl.online), one row per slot. */
export type OnlineState = 'copying' | 'following' | 'fenced' | 'cut-over' | 'rolled-back';

export interface OnlineRow {
  slot: string;
  publication: string;
  state: OnlineState;
  consistentLsn: string | null;
  barrierLsn: string | null;
  fencedAt: Date | null;
  cutoverAt: Date | null;
  outageMs: number | null;
}

export async function readOnline(c: pg.ClientBase, names: StreamNames): Promise<OnlineRow | undefined> {
  const has = await c.query(`SELECT to_regclass('shardctl.online') IS NOT NULL AS ok`);
  if (!has.rows[0].ok) return undefined;
  const r = await c.query(
    `SELECT slot, publication, state, consistent_lsn::text AS consistent_lsn, barrier_lsn::text AS barrier_lsn,
            fenced_at, cutover_at, outage_ms FROM shardctl.online WHERE slot = $1`,
    [names.slot],
  );
  const x = r.rows[0];
  return x
    ? {
        slot: x.slot,
        publication: x.publication,
        state: x.state,
        consistentLsn: x.consistent_lsn,
        barrierLsn: x.barrier_lsn,
        fencedAt: x.fenced_at,
        cutoverAt: x.cutover_at,
        outageMs: x.outage_ms === null ? null : Number(x.outage_ms),
      }
    : undefined;
}

export async function startCopying(c: pg.ClientBase, names: StreamNames, consistentLsn: Lsn, runId: number): Promise<void> {
  await c.query(
    `INSERT INTO shardctl.online (slot, publication, state, consistent_lsn, run_id) VALUES ($1, $2, 'copying', $3, $4)
     ON CONFLICT (slot) DO UPDATE SET publication = EXCLUDED.publication, state = 'copying', consistent_lsn = EXCLUDED.consistent_lsn,
       run_id = EXCLUDED.run_id, barrier_lsn = NULL, fenced_at = NULL, cutover_at = NULL, outage_ms = NULL,
       started_at = now(), updated_at = now()`,
    [names.slot, names.publication, lsnText(consistentLsn), runId],
  );
}

export async function setOnline(
  c: pg.ClientBase,
  names: StreamNames,
  state: OnlineState,
  extra: { barrierLsn?: string | null; fencedAt?: Date | null; cutoverAt?: Date; outageMs?: number } = {},
): Promise<void> {
  await c.query(
    `UPDATE shardctl.online SET state = $2, updated_at = now(),
       barrier_lsn = CASE WHEN $3 THEN $4::pg_lsn ELSE barrier_lsn END,
       fenced_at   = CASE WHEN $5 THEN $6::timestamptz ELSE fenced_at END,
       cutover_at  = coalesce($7, cutover_at),
       outage_ms   = coalesce($8, outage_ms)
     WHERE slot = $1`,
    [
      names.slot,
      state,
      'barrierLsn' in extra,
      extra.barrierLsn ?? null,
      'fencedAt' in extra,
      extra.fencedAt ?? null,
      extra.cutoverAt ?? null,
      extra.outageMs ?? null,
    ],
  );
}

export async function deleteOnline(c: pg.ClientBase, names: StreamNames): Promise<void> {
  const has = await c.query(`SELECT to_regclass('shardctl.online') IS NOT NULL AS ok`);
  if (has.rows[0].ok) await c.query('DELETE FROM shardctl.online WHERE slot = $1', [names.slot]);
}

/** A stream's row in a given state, created or reset (the reverse stream of a rollback window). */
export async function openOnline(c: pg.ClientBase, names: StreamNames, state: OnlineState): Promise<void> {
  await c.query(
    `INSERT INTO shardctl.online (slot, publication, state) VALUES ($1, $2, $3)
     ON CONFLICT (slot) DO UPDATE SET publication = EXCLUDED.publication, state = EXCLUDED.state, consistent_lsn = NULL,
       barrier_lsn = NULL, fenced_at = NULL, cutover_at = NULL, outage_ms = NULL, started_at = now(), updated_at = now()`,
    [names.slot, names.publication, state],
  );
}
