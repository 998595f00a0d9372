import type pg from 'pg';
import type { Config } from '../config/types.js';
import { refuseInOnlineWindow } from '../stream/window.js';
import { withRun } from '../catalog/run.js';
import { withClient, type Endpoint, withTransaction } from '../db/connect.js';
import { quoteTable } from '../db/ident.js';
import { failureText } from '../db/pg-error.js';
import { blockedError, problemsError, usageError } from '../errors.js';
import { alignFleetSequences } from '../sequences/align.js';
import { installGuard } from '../fence/unit-guard.js';
import { shardEndpoint, sourceEndpoint } from '../db/endpoints.js';
import { applyDdl, tableDdl, type TableDdl } from '../tables/ddl.js';
import { introspect } from '../tables/introspect.js';
import { captureDefinitions, readDefinitions } from '../tables/definitions.js';
import { appendShard, editConfigFile, previewConfigEdit } from '../config/edit-file.js';
import { qualifiedName } from '../tables/scope.js';
import { recordTopology } from '../fence/record-topology.js';
import { findUnplacedFromCatalog } from '../unit-copy/unplaced.js';
import { loadModel } from '../tables/model.js';
import { interpolateValue } from '../config/interpolate.js';

export interface AddShardOptions {
  id: string;
  /** as it will be written in the config; `${VAR}` references are resolved from `env` to connect */
  primary: string;
  replicas?: readonly string[];
  /** for `${VAR}` (default process.env) */
  env?: NodeJS.ProcessEnv;
  /**
   * false: only check the server (reachable, a primary, allowed to create tables, holding no rows of
   * the configured tables) and return the config the addition would give, creating nothing and
   * writing nothing (default true)
   */
  apply?: boolean;
}

export interface AddShardResult {
  id: string;
  /** tables created on the new shard (those that existed already, empty and alike, are kept); a preview: those it would create */
  created: string[];
  /** the config as written with the new shard appended (a preview: as it would be, the file untouched) */
  config: Config;
  applied: boolean;
}

/**
 * Adds a shard: checks the server (reachable, writable, holding none of the configured tables' rows),
 * creates the configured tables from the definitions captured in the catalog, appends the shard to
 * the config file and the catalog. Moving data onto it is `rebalance`'s job.
 */
export async function addShard(config: Config, opts: AddShardOptions): Promise<AddShardResult> {
  if (config.shards.some((s) => s.id === opts.id)) throw usageError(`shard ${opts.id} is already in ${config.file}`);
  const env = opts.env ?? process.env;
  const primary = resolve('--primary', opts.primary, env);
  const replicas = (opts.replicas ?? []).map((r) => resolve('--replica', r, env));
  if (config.shards.some((s) => sameServer(s.primary, primary))) throw usageError(`${opts.id}: that server and database is already a shard`);
  const target: Endpoint = { label: `shard ${opts.id}`, url: primary };
  if (opts.apply === false) return preview(config, opts, target);
  const spec = {
    command: 'add-shard',
    args: { id: opts.id },
    lock: 'run' as const,
    outcome: (r: AddShardResult) => ({ status: 'ok' as const, summary: { id: r.id, created: r.created } }),
  };
  return withRun(config.catalog, spec, async ({ catalog, run }) => {
    await refuseInOnlineWindow(catalog.client, 'add-shard');
    const defs = await definitions(catalog.client, config);
    const { created, model } = await withClient(target, async (c) => {
      await checkWritable(c, opts.id);
      const existing = await introspect(c, defs.map((d) => d.table));
      await checkEmpty(c, opts.id, [...existing.keys()]);
      const missing = defs.filter((d) => !existing.has(d.table));
      await withTransaction(c, async () => {
        await applyDdl(c, missing);
      });
      // the new shard's ids follow the interleaving rule at its position, past every shard's ids
      // connected with the resolved URLs; the file keeps the ${VAR} references (appendShard below)
      const withNew: Config = { ...config, shards: [...config.shards, { id: opts.id, primary, replicas }] };
      const model = await loadModel(config, c, `shard ${opts.id}`);
      await alignFleetSequences(withNew, model.tables, undefined, [opts.id]);
      // the write fence's guard before any application can write here (fence/unit-guard.ts)
      await installGuard(c, target, model);
      return { created: missing.map((d) => d.table), model };
    });
    // units created on the shards after migrate are placed where they are before the hash changes,
    // those created meanwhile found or refused (record-topology.ts)
    const scan = () => findUnplacedFromCatalog(config, catalog.client);
    const unplaced = await scan();
    const next = editConfigFile(config.file, appendShard({ id: opts.id, primary: opts.primary, replicas: opts.replicas ?? [] }));
    await recordTopology(catalog.client, next, { fleet: next, model, unplaced, rescan: scan, runId: run?.id });
    return { id: opts.id, created, config: next, applied: true };
  });
}

/** The checks of an addition, read-only, and the config it would give; nothing is created or written. */
async function preview(config: Config, opts: AddShardOptions, target: Endpoint): Promise<AddShardResult> {
  const tables = config.tables.map(qualifiedName);
  const created = await withClient(target, async (c) => {
    await checkWritable(c, opts.id);
    const existing = await introspect(c, tables);
    await checkEmpty(c, opts.id, [...existing.keys()]);
    return tables.filter((t) => !existing.has(t));
  });
  const next = previewConfigEdit(config.file, appendShard({ id: opts.id, primary: opts.primary, replicas: opts.replicas ?? [] }));
  return { id: opts.id, created, config: next, applied: false };
}

/** The captured definitions; captured now from the source (or the first shard) if no migrate did it yet. */
async function definitions(c: pg.ClientBase, config: Config): Promise<TableDdl[]> {
  const stored = await readDefinitions(c);
  if (stored.length) return stored;
  const why: string[] = [];
  for (const from of [sourceEndpoint(config), shardEndpoint(config, config.shards[0]!.id)]) {
    try {
      return await withClient(from, async (s) => {
        const model = await loadModel(config, s, from.label);
        await captureDefinitions(c, s, model);
        const out: TableDdl[] = [];
        for (const t of model.tables) out.push(await tableDdl(s, t.name, t.config.crossingKeys)); // one query at a time per client
        return out;
      });
    } catch (e) {
      why.push(failureText(e, from.label)); // try the next, and say why if none can
    }
  }
  throw blockedError('no table definitions in the catalog, and neither the source nor the first shard could give them', { details: why });
}

async function checkWritable(c: pg.ClientBase, id: string): Promise<void> {
  const r = await c.query(
    `SELECT pg_is_in_recovery() AS standby, has_schema_privilege('public', 'CREATE') AS can_create, current_user AS role`,
  );
  const x = r.rows[0];
  if (x.standby) throw blockedError(`shard ${id}: the server is a standby (in recovery); give the primary`);
  if (!x.can_create) throw blockedError(`shard ${id}: role ${x.role} cannot create tables in schema public`);
}

async function checkEmpty(c: pg.ClientBase, id: string, tables: string[]): Promise<void> {
  const problems: string[] = [];
  for (const t of tables) {
    const r = await c.query(`SELECT EXISTS (SELECT 1 FROM ${quoteTable(t)}) AS any`);
    if (r.rows[0].any) problems.push(`shard ${id}: table ${t} already holds rows`);
  }
  if (problems.length) {
    throw problemsError('blocked', problems, `shard ${id} already holds rows of ${problems.length} configured tables`, 'a new shard must start empty');
  }
}

/** `${VAR}` resolved as the config loader does (the file keeps the reference); an unset variable is a usage error. */
function resolve(flag: string, url: string, env: NodeJS.ProcessEnv): string {
  const r = interpolateValue(url, env);
  if (r.missing.length) {
    throw usageError(`${flag}: environment variable ${r.missing.join(', ')} is not set`, 'export it, as for the config file, or write the URL without it (the password then comes from PGPASSWORD or the pgpass file)');
  }
  return r.value;
}

function sameServer(a: string, b: string): boolean {
  try {
    const x = new URL(a);
    const y = new URL(b);
    return x.hostname === y.hostname && (x.port || '5432') === (y.port || '5432') && x.pathname === y.pathname;
  } catch {
    return false;
  }
}
