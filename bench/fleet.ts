import { execFileSync } from 'node:child_process';
import { type Config, withClient, type Endpoint, quoteTable, shardEndpoint, sourceEndpoint, rootTables, takeInventory, createRouter, loadModel, type Model, qualifiedName } from '../src/index.js';

const APP = { applicationName: 'shardctl bench' };

/** What every phase works from: the source's model and each shard's units, computed once, outside any timing. */
export interface BenchPlan {
  readonly config: Config;
  readonly model: Model;
  readonly source: Endpoint;
  readonly shards: readonly { readonly id: string; readonly endpoint: Endpoint; readonly units: readonly string[] }[];
  /** on-disk size of the sharded tables on the source (heap + TOAST + indexes) */
  readonly sourceBytes: number;
  /** exact row count of the sharded tables on the source */
  readonly sourceRows: number;
}

export async function planBench(config: Config): Promise<BenchPlan> {
  const source = sourceEndpoint(config);
  return withClient(
    source,
    async (c) => {
      const model = await loadModel(config, c);
      const units = await takeInventory(c, model, rootTables(model));
      const router = createRouter(config);
      const byShard = new Map(config.shards.map((s) => [s.id, [] as string[]]));
      for (const u of [...units.keys()].sort()) byShard.get(router.shardFor(u))!.push(u);
      const names = model.sharded.map((t) => t.name);
      const size = await c.query<{ b: string }>(`SELECT sum(pg_total_relation_size(n::regclass))::bigint AS b FROM unnest($1::text[]) AS n`, [names]);
      let rows = 0;
      for (const t of model.sharded) rows += Number((await c.query<{ n: string }>(`SELECT count(*) AS n FROM ${quoteTable(t.name)}`)).rows[0]!.n);
      return {
        config,
        model,
        source,
        shards: config.shards.map((s) => ({ id: s.id, endpoint: shardEndpoint(config, s.id), units: byShard.get(s.id)! })),
        sourceBytes: Number(size.rows[0]!.b),
        sourceRows: rows,
      };
    },
    APP,
  );
}

/**
 * The fleet as before any migration: every configured table emptied on every shard, the catalog
 * dropped, then the previous phase's writes settled (see checkpointAll).
 */
export async function resetFleet(config: Config): Promise<void> {
  const tables = config.tables.map((t) => quoteTable(qualifiedName(t))).join(', ');
  await Promise.all(config.shards.map((s) => withClient(shardEndpoint(config, s.id), (c) => c.query(`TRUNCATE ${tables} CASCADE`), APP)));
  await withClient({ label: 'catalog', url: config.catalog }, (c) => c.query('DROP SCHEMA IF EXISTS shardctl CASCADE'), APP);
  await checkpointAll(config);
}

/**
 * CHECKPOINT on every server, then sync(1): with fsync off the kernel writes dirty pages back in the
 * background whenever it likes, so without this a phase pays, at random, for the previous one's
 * writes (the first phase for the whole fixture load: measured 20-45% slower before this was added).
 */
export async function checkpointAll(config: Config): Promise<void> {
  const eps: Endpoint[] = [sourceEndpoint(config), ...config.shards.map((s) => shardEndpoint(config, s.id))];
  await Promise.all(eps.map((e) => withClient(e, (c) => c.query('CHECKPOINT'), APP)));
  try {
    execFileSync('sync', { stdio: 'ignore', timeout: 120_000 });
  } catch {
    /* best effort: no sync(1) here */
  }
}

/** VACUUM ANALYZE every configured table on every shard (the bench runs with autovacuum off). */
export async function vacuumShards(config: Config): Promise<void> {
  const tables = config.tables.map((t) => quoteTable(qualifiedName(t))).join(', ');
  await Promise.all(config.shards.map((s) => withClient(shardEndpoint(config, s.id), (c) => c.query(`VACUUM (ANALYZE) ${tables}`), APP)));
}
