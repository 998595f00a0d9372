import type pg from 'pg';
import { readCrossShardSummary, type CrossShardSummary } from './cross-shard-rows.js';
import { LOCK_KEY } from './locks.js';

/**
 * What `health` reads from the catalog, read-only (never creates the schema): the recorded shards,
 * placements on shards the config does not know, moves in flight, whether a run holds the lock, the
 * record of cross-shard rows and deferred indexes. health/catalog.ts judges them.
 */
export interface CatalogFacts {
  readonly present: boolean;
  readonly schemaVersion: number;
  readonly shards: readonly string[];
  readonly stray: readonly { readonly shard: string; readonly units: number; readonly sample: readonly string[] }[];
  readonly moves: readonly { readonly unit: string; readonly from: string; readonly to: string; readonly step: string; readonly since: string }[];
  readonly moveCount: number;
  readonly runInProgress: boolean;
  /** tables with several routes: the record of cross-shard rows */
  readonly crossShard: readonly CrossShardSummary[];
  /** per shard, secondary indexes migrate dropped for an initial load and has not built yet */
  readonly deferredIndexes: readonly { readonly shard: string; readonly indexes: number }[];
}

const ABSENT: CatalogFacts = { present: false, schemaVersion: 0, shards: [], stray: [], moves: [], moveCount: 0, runInProgress: false, crossShard: [], deferredIndexes: [] };

const CATALOG_PRESENT_SQL = `SELECT to_regclass('shardctl.shards') IS NOT NULL AS present`;

/**
 * $1 configured shard ids; $2, $3 the two halves of the run lock's key (pg_locks shows a bigint
 * advisory key as classid = high 32 bits, objid = low 32 bits, objsubid = 1).
 */
const CATALOG_FACTS_SQL = `
SELECT
  (SELECT value FROM shardctl.meta WHERE key = 'schema_version') AS schema_version,
  (SELECT coalesce(json_agg(id ORDER BY position), '[]') FROM shardctl.shards) AS shards,
  (SELECT coalesce(json_agg(json_build_object('shard', shard, 'units', n, 'sample', sample) ORDER BY shard), '[]')
     FROM (SELECT shard, count(*) AS n, (array_agg(unit ORDER BY unit))[1:5] AS sample
             FROM shardctl.placements WHERE shard <> ALL ($1::text[]) GROUP BY shard) p) AS stray,
  (SELECT coalesce(json_agg(json_build_object('unit', unit, 'from', from_shard, 'to', to_shard, 'step', step,
                                              'since', updated_at) ORDER BY started_at, unit), '[]')
     FROM (SELECT * FROM shardctl.moves ORDER BY started_at, unit LIMIT 20) m) AS moves,
  (SELECT count(*) FROM shardctl.moves)::int AS move_count,
  EXISTS (SELECT 1 FROM pg_locks
           WHERE locktype = 'advisory' AND granted AND classid = $2::oid AND objid = $3::oid AND objsubid = 1
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())) AS run_in_progress`;

/** The catalog's facts, for the configured shard ids `ids`; a catalog no run has created: ABSENT. */
export async function readCatalogFacts(c: pg.ClientBase, ids: readonly string[]): Promise<CatalogFacts> {
  const classid = String(LOCK_KEY >> 32n);
  const objid = String(LOCK_KEY & 0xffff_ffffn);
  const present = (await c.query(CATALOG_PRESENT_SQL)).rows[0]?.present === true;
  if (!present) return ABSENT;
  const row = (await c.query(CATALOG_FACTS_SQL, [ids, classid, objid])).rows[0] as Record<string, unknown>;
  return {
    present: true,
    schemaVersion: Number(row.schema_version ?? 0),
    shards: row.shards as string[],
    stray: (row.stray as { shard: string; units: number; sample: string[] }[]).map((s) => ({ shard: s.shard, units: Number(s.units), sample: s.sample })),
    moves: (row.moves as CatalogFacts['moves'][number][]).map((m) => ({ ...m, since: new Date(m.since).toISOString() })),
    moveCount: Number(row.move_count),
    runInProgress: row.run_in_progress === true,
    crossShard: await readCrossShardSummary(c),
    deferredIndexes: await readDeferred(c),
  };
}

/** Deferred indexes per shard; a catalog older than deferred indexes has no such table: none. */
async function readDeferred(c: pg.ClientBase): Promise<CatalogFacts['deferredIndexes']> {
  if ((await c.query(`SELECT to_regclass('shardctl.deferred_indexes') IS NOT NULL AS ok`)).rows[0]?.ok !== true) return [];
  const r = await c.query<{ shard: string; n: number }>('SELECT shard, count(*)::int AS n FROM shardctl.deferred_indexes GROUP BY shard ORDER BY shard');
  return r.rows.map((x) => ({ shard: x.shard, indexes: x.n }));
}
