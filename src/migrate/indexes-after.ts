import type pg from 'pg';
import type { LimitFunction } from 'p-limit';
import type { Config } from '../config/types.js';
import { deferredIndexes, forgetDeferredIndex, recordDeferredIndexes, type DeferredIndex } from '../catalog/deferred-indexes.js';
import { freshSessions, type Sessions } from '../db/sessions.js';
import { shardEndpoint } from '../db/endpoints.js';
import { quoteTable } from '../db/ident.js';
import { failureText, pgFailure } from '../db/pg-error.js';
import type { TableModel } from '../tables/model.js';
import type { EventSink } from './events.js';

// Secondary indexes only: unique indexes and constraint indexes (primary key, unique, exclusion)
// guard correctness during the copy and stay. Plain tables only (a partitioned table's index has
// partitions of its own), valid indexes only.
const DROPPABLE = `
  SELECT quote_ident(n.nspname) || '.' || quote_ident(ic.relname) AS index, pg_get_indexdef(i.indexrelid) AS ddl,
         (SELECT a.attname FROM pg_attribute a WHERE a.attrelid = i.indrelid AND a.attnum = i.indkey[0]) AS lead
    FROM pg_index i
    JOIN pg_class ic ON ic.oid = i.indexrelid
    JOIN pg_namespace n ON n.oid = ic.relnamespace
    JOIN pg_class t ON t.oid = i.indrelid
   WHERE i.indrelid = $1::regclass AND t.relkind = 'r' AND NOT i.indisunique AND i.indisvalid
     AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
     AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid OR h.inhparent = i.indexrelid)
   ORDER BY 1`;

/**
 * Above this many batches to one shard, the index a batch's checks select the table's rows by (its
 * route or via column) stays: without it each batch's sums and foreign-key check would read every
 * row the earlier batches loaded, which grows with the square of the load. At a few batches that
 * re-reading costs less than keeping the index up to date row by row.
 */
export const FEW_BATCHES = 8;

/**
 * Before an initial load's copy (migrate's default; `--no-indexes-after` keeps them): on every
 * shard, each sharded table that is EMPTY has its secondary indexes dropped, so the load writes the
 * heap only and each index is then built once, sorted, from the data (as pgcopydb does). The
 * definitions are committed to the catalog first; a run that dies before building them leaves them
 * there and the next migrate run builds them (buildDeferredIndexes). A table holding any row keeps
 * its indexes: deleting and re-copying units into it needs them. `manyBatches`: the shards loaded
 * in more than FEW_BATCHES batches, whose tables keep the index leading with the column batches
 * select by.
 */
export async function deferIndexes(config: Config, catalog: pg.ClientBase, runId: number | undefined, tables: readonly TableModel[], manyBatches: ReadonlySet<string>, sessions: Sessions = freshSessions): Promise<DeferredIndex[]> {
  const perShard = await Promise.all(
    config.shards.map((s) =>
      sessions.use(shardEndpoint(config, s.id), async (c) => {
        const found: DeferredIndex[] = [];
        for (const t of tables) {
          const empty = (await c.query(`SELECT NOT EXISTS (SELECT 1 FROM ${quoteTable(t.name)}) AS empty`)).rows[0].empty as boolean;
          if (!empty) continue;
          const r = await c.query<{ index: string; ddl: string; lead: string | null }>(DROPPABLE, [quoteTable(t.name)]);
          const kept = manyBatches.has(s.id) ? selectedBy(t) : undefined;
          for (const x of r.rows) {
            if (kept === 'all' || (kept && x.lead !== null && kept.includes(x.lead))) continue;
            found.push({ shard: s.id, index: x.index, table: t.name, ddl: x.ddl });
          }
        }
        return found;
      }).catch((e) => {
        throw pgFailure(e, `shard ${s.id}, deferring indexes`);
      }),
    ),
  );
  const all = perShard.flat();
  await recordDeferredIndexes(catalog, runId, all); // committed before any drop
  await Promise.all(
    config.shards.map((s) => {
      const mine = all.filter((d) => d.shard === s.id);
      if (!mine.length) return undefined;
      return sessions.use(shardEndpoint(config, s.id), async (c) => {
        await c.query('BEGIN');
        for (const d of mine) await c.query(`DROP INDEX IF EXISTS ${d.index}`);
        await c.query('COMMIT');
      }).catch((e) => {
        throw pgFailure(e, `shard ${s.id}, deferring indexes`);
      });
    }),
  );
  return all;
}

/** The columns a batch selects `t`'s rows by on a shard; 'all' where several routes do (every index stays). */
function selectedBy(t: TableModel): readonly string[] | 'all' {
  if (t.config.routes) return 'all';
  const r = t.config.route;
  return r.kind === 'key' || r.kind === 'cell' || r.kind === 'via' ? [r.column] : []; // lat/lng: by primary key
}

/**
 * Builds every index the catalog lists as deferred (this run's and any a killed run left), shards
 * `limit` at a time, and forgets each once it exists. Returns the problems (the index stays listed,
 * and the next run tries again).
 */
export async function buildDeferredIndexes(config: Config, catalog: pg.ClientBase, limit: LimitFunction, emit: EventSink, sessions: Sessions = freshSessions): Promise<string[]> {
  const pending = await deferredIndexes(catalog);
  // the catalog forgets each built index while the next one builds, one statement at a time on its
  // session (a pg client queues concurrent queries, and pg 9 will refuse them)
  let journal: Promise<void> = Promise.resolve();
  const problems: string[] = [];
  const shards = [...new Set(pending.map((d) => d.shard))];
  await Promise.all(
    shards.map((shard) =>
      limit(async () => {
        const mine = pending.filter((d) => d.shard === shard);
        const t0 = performance.now();
        if (!config.shards.some((s) => s.id === shard)) {
          problems.push(`shard ${shard}: ${mine.length} deferred indexes are listed for a shard that is no longer in the config`);
          return;
        }
        try {
          await sessions.use(shardEndpoint(config, shard), async (c) => {
            for (const d of mine) {
              // IF NOT EXISTS: a run may have died after the build and before the catalog forgot it
              await c.query(d.ddl.replace(/^CREATE INDEX /, 'CREATE INDEX IF NOT EXISTS '));
              journal = journal.then(() => forgetDeferredIndex(catalog, d));
              journal.catch(() => undefined); // awaited below; observed here so a failure waits for it
            }
          });
          emit({ type: 'indexes', shard, indexes: mine.length, seconds: (performance.now() - t0) / 1000 });
        } catch (e) {
          problems.push(failureText(e, `shard ${shard}, building deferred indexes`));
        }
      }),
    ),
  );
  await journal;
  return problems;
}
