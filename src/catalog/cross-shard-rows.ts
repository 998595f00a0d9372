import type pg from 'pg';
import { withTransaction } from '../db/connect.js';

/**
 * The record of cross-shard rows the location design keeps (its `cross_shard_bumps`): one catalog
 * row per row of a table with several routes that lives on more than one shard, with those shards.
 * Written by migrate and rebalance (the whole table's record, refreshed from the shards) and by
 * `crossShard` (the rows an application declares, in the commit decision's transaction).
 */
export const CROSS_ROWS_MIGRATION = `CREATE TABLE shardctl.cross_shard_rows (
     table_name  text NOT NULL,
     row_key     text NOT NULL,
     shards      text[] NOT NULL,
     units       text[] NOT NULL DEFAULT '{}',
     written_by  text NOT NULL,
     recorded_at timestamptz NOT NULL DEFAULT now(),
     PRIMARY KEY (table_name, row_key)
   );
   -- per table: its rows (each once) at the last refresh, for the share of cross-shard rows
   CREATE TABLE shardctl.cross_shard_tables (
     table_name   text PRIMARY KEY,
     rows         bigint NOT NULL,
     refreshed_at timestamptz NOT NULL DEFAULT now()
   );`;

export interface CrossRecordRow {
  key: string;
  shards: readonly string[];
  units?: readonly string[];
}

/** Adds (or updates) rows of the record; `by` says who wrote them ('crossShard', …). */
export async function recordCrossRows(c: pg.ClientBase, table: string, rows: readonly CrossRecordRow[], by: string): Promise<void> {
  if (!rows.length) return;
  await c.query(
    `INSERT INTO shardctl.cross_shard_rows (table_name, row_key, shards, units, written_by)
     SELECT $1, k, string_to_array(s, ','), string_to_array(u, ','), $5 FROM unnest($2::text[], $3::text[], $4::text[]) AS x(k, s, u)
     ON CONFLICT (table_name, row_key) DO UPDATE SET shards = EXCLUDED.shards, units = EXCLUDED.units,
       written_by = EXCLUDED.written_by, recorded_at = now()`,
    [table, rows.map((r) => r.key), rows.map((r) => r.shards.join(',')), rows.map((r) => (r.units ?? []).join(',')), by],
  );
}

/** Replaces a table's whole record (and its row count) in one catalog transaction. */
export async function replaceCrossRows(c: pg.ClientBase, table: string, rows: readonly CrossRecordRow[], total: number, by: string): Promise<void> {
  await withTransaction(c, async () => {
    await c.query('DELETE FROM shardctl.cross_shard_rows WHERE table_name = $1', [table]);
    await recordCrossRows(c, table, rows, by);
    await c.query(
      `INSERT INTO shardctl.cross_shard_tables (table_name, rows) VALUES ($1, $2)
       ON CONFLICT (table_name) DO UPDATE SET rows = EXCLUDED.rows, refreshed_at = now()`,
      [table, total],
    );
  });
}

export interface CrossShardSummary {
  table: string;
  /** rows recorded as living on more than one shard */
  crossShard: number;
  /** the table's rows at the last refresh (undefined: never refreshed) */
  rows?: number;
}

/** Per table: the recorded cross-shard rows and the table's rows. Empty when the catalog has no record. */
export async function readCrossShardSummary(c: pg.ClientBase): Promise<CrossShardSummary[]> {
  const ok = await c.query(`SELECT to_regclass('shardctl.cross_shard_rows') IS NOT NULL AS ok`);
  if (!ok.rows[0].ok) return [];
  const r = await c.query<{ table_name: string; n: string; rows: string | null }>(
    `SELECT coalesce(r.table_name, t.table_name) AS table_name, coalesce(r.n, 0) AS n, t.rows
       FROM (SELECT table_name, count(*) AS n FROM shardctl.cross_shard_rows GROUP BY 1) r
       FULL JOIN shardctl.cross_shard_tables t ON t.table_name = r.table_name ORDER BY 1`,
  );
  return r.rows.map((x) => ({ table: x.table_name, crossShard: Number(x.n), rows: x.rows === null ? undefined : Number(x.rows) }));
}
