import type pg from 'pg';

/**
 * Bounds every later statement of the session to end by `deadline` (epoch ms): past it, PostgreSQL
 * cancels the statement (SQLSTATE 57014). How a fence's work is held to the time it may take.
 */
export function setDeadline(c: pg.ClientBase, deadline: number): Promise<unknown> {
  return c.query(`SET statement_timeout = ${Math.max(1, Math.round(deadline - Date.now()))}`);
}
