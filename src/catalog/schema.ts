import { TOPOLOGY_MIGRATION } from './topology-sql.js';
import { CROSS_ROWS_MIGRATION } from './cross-shard-rows.js';
import { HELD_ROUTES_MIGRATION } from './held-routes.js';
import { JOURNAL_KEYS_MIGRATION } from './journal-keys.js';

/**
 * The catalog's DDL as ordered migrations. `meta.schema_version` records how many have run, so a
 * later release appends a migration and upgrades an existing catalog in place. Never edit a
 * released migration; add one.
 */
export const MIGRATIONS: readonly string[] = [
  `CREATE TABLE shardctl.meta (key text PRIMARY KEY, value text NOT NULL);

   -- one row per shardctl run that took the lock: the audit log
   CREATE TABLE shardctl.runs (
     id          bigserial PRIMARY KEY,
     command     text NOT NULL,
     args        jsonb NOT NULL DEFAULT '{}',
     status      text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'ok', 'failed', 'interrupted')),
     pid         integer NOT NULL,
     host        text NOT NULL,
     started_at  timestamptz NOT NULL DEFAULT now(),
     finished_at timestamptz,
     summary     jsonb
   );

   -- the topology as last used (connection strings stored redacted: never a password in the catalog)
   CREATE TABLE shardctl.shards (
     id          text PRIMARY KEY,
     position    integer NOT NULL UNIQUE,
     primary_url text NOT NULL,
     added_at    timestamptz NOT NULL DEFAULT now()
   );
   CREATE TABLE shardctl.pins (
     tenant     text PRIMARY KEY,
     shard      text NOT NULL,
     created_at timestamptz NOT NULL DEFAULT now()
   );
   CREATE TABLE shardctl.cell_mapping (
     cell            text PRIMARY KEY,
     shard           text NOT NULL,
     region          text,
     capacity_status text,
     updated_at      timestamptz NOT NULL DEFAULT now()
   );

   -- where each unit (tenant or H3 cell) lives now: the source of truth after migration
   CREATE TABLE shardctl.placements (
     unit       text PRIMARY KEY,
     shard      text NOT NULL,
     rows       bigint NOT NULL DEFAULT 0,
     bytes      bigint NOT NULL DEFAULT 0,
     run_id     bigint REFERENCES shardctl.runs (id),
     placed_at  timestamptz NOT NULL DEFAULT now()
   );
   CREATE INDEX ON shardctl.placements (shard);

   -- per unit and table: the row count and checksum proven equal to the source when placed
   CREATE TABLE shardctl.placement_tables (
     unit       text NOT NULL REFERENCES shardctl.placements (unit) ON DELETE CASCADE,
     table_name text NOT NULL,
     rows       bigint NOT NULL,
     checksum   text NOT NULL,
     PRIMARY KEY (unit, table_name)
   );

   -- the journal of rebalance moves in flight; a row here means a unit is fenced or half-moved
   CREATE TABLE shardctl.moves (
     unit       text PRIMARY KEY,
     from_shard text NOT NULL,
     to_shard   text NOT NULL,
     step       text NOT NULL,
     run_id     bigint REFERENCES shardctl.runs (id),
     started_at timestamptz NOT NULL DEFAULT now(),
     updated_at timestamptz NOT NULL DEFAULT now()
   );

   -- definitions of the configured tables, captured from the source, for add-shard
   CREATE TABLE shardctl.table_defs (
     table_name  text PRIMARY KEY,
     position    integer NOT NULL,
     ddl         text NOT NULL,
     captured_at timestamptz NOT NULL DEFAULT now()
   );`,

  // two-phase commit: the coordinator's record of each cross-shard transaction (src/two-phase/).
  // 'committing' is the commit point: once a row says so, every participant must commit.
  `CREATE TABLE shardctl.transactions (
     gid          text PRIMARY KEY,
     participants text[] NOT NULL,
     state        text NOT NULL CHECK (state IN ('preparing', 'committing', 'aborting', 'committed', 'aborted')),
     pid          integer NOT NULL,
     host         text NOT NULL,
     started_at   timestamptz NOT NULL DEFAULT now(),
     decided_at   timestamptz,
     finished_at  timestamptz
   );
   CREATE INDEX ON shardctl.transactions (state) WHERE state IN ('preparing', 'committing', 'aborting');`,

  // the catalog as the live topology routers follow, and the SQL routing functions (topology-sql.ts)
  TOPOLOGY_MIGRATION,
  // online migration (migrate --follow / cutover): one row per replication slot shardctl streams from
  `CREATE TABLE shardctl.online (
     slot           text PRIMARY KEY,
     publication    text NOT NULL,
     state          text NOT NULL CHECK (state IN ('copying', 'following', 'fenced', 'cut-over')),
     consistent_lsn pg_lsn,
     barrier_lsn    pg_lsn,
     fenced_at      timestamptz,
     cutover_at     timestamptz,
     outage_ms      bigint,
     run_id         bigint REFERENCES shardctl.runs (id),
     started_at     timestamptz NOT NULL DEFAULT now(),
     updated_at     timestamptz NOT NULL DEFAULT now()
   );`,
  // migrate (initial loads): secondary indexes dropped on an empty shard table for an initial load,
  // recorded BEFORE the drop; each row is removed once its index is built again (migrate/indexes-after.ts)
  `CREATE TABLE shardctl.deferred_indexes (
     shard       text NOT NULL,
     index_name  text NOT NULL,
     table_name  text NOT NULL,
     ddl         text NOT NULL,
     run_id      bigint REFERENCES shardctl.runs (id),
     deferred_at timestamptz NOT NULL DEFAULT now(),
     PRIMARY KEY (shard, index_name)
   );`,
  // the record of cross-shard rows (tables with several routes): cross-shard-rows.ts
  CROSS_ROWS_MIGRATION,
  // rollback after cutover: the reverse stream's row (shards -> monolith) ends 'rolled-back'
  `ALTER TABLE shardctl.online DROP CONSTRAINT online_state_check,
     ADD CONSTRAINT online_state_check CHECK (state IN ('copying', 'following', 'fenced', 'cut-over', 'rolled-back'));`,
  // routing follows the data: a unit keeps its route on its placement until its move flips (held-routes.ts)
  HELD_ROUTES_MIGRATION,
  // moves of many units between the same two shards share one stream (rebalance/online.ts): its name, per move
  `ALTER TABLE shardctl.moves ADD COLUMN stream text;`,
  // the journal's foreign keys checked by the one door, not per row; the proofs' cascade by a trigger (journal-keys.ts)
  JOURNAL_KEYS_MIGRATION,
];

export const CATALOG_VERSION = MIGRATIONS.length;
