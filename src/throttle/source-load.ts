import type pg from 'pg';

/** The monolith's load as the throttle reads it. */
export interface SourceLoad {
  /** client sessions running a query now, shardctl's own (application_name shardctl…) not counted */
  active: number;
  maxConnections: number;
}

/**
 * Sessions in a query at this moment against max_connections: what the monolith's own work costs it
 * now, read from pg_stat_activity (no extension, any role sees the states of every session's
 * backend type). The copy and the follower are shardctl sessions and do not count: pausing them must
 * lower the load, not be the load.
 */
export async function sourceLoad(c: pg.ClientBase): Promise<SourceLoad> {
  const r = await c.query(
    `SELECT count(*) FILTER (WHERE state = 'active' AND backend_type = 'client backend' AND pid <> pg_backend_pid()
                              AND coalesce(application_name, '') NOT LIKE 'shardctl%')::int AS active,
            current_setting('max_connections')::int AS max
       FROM pg_stat_activity`,
  );
  return { active: r.rows[0].active, maxConnections: r.rows[0].max };
}
