import type pg from 'pg';

/** A secondary index migrate dropped on a shard for an initial load, to be built once the data is in. */
export interface DeferredIndex {
  readonly shard: string;
  /** schema-qualified, quoted as pg_get_indexdef names it */
  readonly index: string;
  readonly table: string;
  /** pg_get_indexdef() of the index as it was */
  readonly ddl: string;
}

/** Records indexes about to be dropped (committed before the drop, so a crash cannot lose them). */
export async function recordDeferredIndexes(c: pg.ClientBase, runId: number | undefined, list: readonly DeferredIndex[]): Promise<void> {
  if (!list.length) return;
  await c.query(
    `INSERT INTO shardctl.deferred_indexes (shard, index_name, table_name, ddl, run_id)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[])
     ON CONFLICT (shard, index_name) DO NOTHING`,
    [list.map((d) => d.shard), list.map((d) => d.index), list.map((d) => d.table), list.map((d) => d.ddl), list.map(() => runId ?? null)],
  );
}

/** Every index still waiting to be built, in the order it was deferred. */
export async function deferredIndexes(c: pg.ClientBase): Promise<DeferredIndex[]> {
  const r = await c.query<{ shard: string; index_name: string; table_name: string; ddl: string }>(
    'SELECT shard, index_name, table_name, ddl FROM shardctl.deferred_indexes ORDER BY deferred_at, shard, index_name',
  );
  return r.rows.map((x) => ({ shard: x.shard, index: x.index_name, table: x.table_name, ddl: x.ddl }));
}

/** The index exists again on its shard. */
export async function forgetDeferredIndex(c: pg.ClientBase, d: DeferredIndex): Promise<void> {
  await c.query('DELETE FROM shardctl.deferred_indexes WHERE shard = $1 AND index_name = $2', [d.shard, d.index]);
}

/** The shard has left the fleet (remove-shard): nobody will build its deferred indexes. */
export async function forgetShardDeferredIndexes(c: pg.ClientBase, shard: string): Promise<void> {
  await c.query('DELETE FROM shardctl.deferred_indexes WHERE shard = $1', [shard]);
}
