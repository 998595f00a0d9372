import type pg from 'pg';

/**
 * The on-demand throttle (`shardctl throttle on|off`): one row in shardctl.throttle that every copy
 * and applier reads between batches, so another terminal can pause them. Created on first use (no
 * catalog migration: the row is advisory and the table is tiny).
 */
export interface ThrottleFlag {
  /** who set it: the database user and the application name of the session */
  setBy: string;
  setAt: Date;
  /** null: until `throttle off` */
  until: Date | null;
}

const TABLE_SQL = `CREATE TABLE IF NOT EXISTS shardctl.throttle (
  id      boolean PRIMARY KEY DEFAULT true CHECK (id),
  set_by  text NOT NULL,
  set_at  timestamptz NOT NULL DEFAULT now(),
  until   timestamptz)`;

export async function setThrottleFlag(c: pg.ClientBase, forMs: number | undefined): Promise<ThrottleFlag> {
  await c.query('CREATE SCHEMA IF NOT EXISTS shardctl');
  await c.query(TABLE_SQL);
  const r = await c.query(
    `INSERT INTO shardctl.throttle (set_by, set_at, until)
     VALUES (current_user || ' (' || current_setting('application_name') || ')', now(), now() + $1 * interval '1 millisecond')
     ON CONFLICT (id) DO UPDATE SET set_by = EXCLUDED.set_by, set_at = EXCLUDED.set_at, until = EXCLUDED.until
     RETURNING set_by, set_at, until`,
    [forMs ?? null],
  );
  return { setBy: r.rows[0].set_by, setAt: r.rows[0].set_at, until: r.rows[0].until };
}

/** Returns whether a flag was set (and not yet expired). */
export async function clearThrottleFlag(c: pg.ClientBase): Promise<boolean> {
  if (!(await c.query(`SELECT to_regclass('shardctl.throttle') IS NOT NULL AS ok`)).rows[0].ok) return false;
  const r = await c.query(`DELETE FROM shardctl.throttle RETURNING until IS NULL OR until > now() AS live`);
  return Boolean(r.rows[0]?.live);
}

/** The flag in force now, or undefined (none set, or expired). */
export async function readThrottleFlag(c: pg.ClientBase): Promise<ThrottleFlag | undefined> {
  if (!(await c.query(`SELECT to_regclass('shardctl.throttle') IS NOT NULL AS ok`)).rows[0].ok) return undefined;
  const r = await c.query(`SELECT set_by, set_at, until FROM shardctl.throttle WHERE until IS NULL OR until > now()`);
  const x = r.rows[0];
  return x && { setBy: x.set_by, setAt: x.set_at, until: x.until };
}
