import type pg from 'pg';
import { connect, withClient, type Endpoint } from '../db/connect.js';
import { freshSessions, type Sessions } from '../db/sessions.js';
import { prepareCells } from '../unit-copy/inventory.js';
import { foreignRows } from './foreign-rows.js';
import { shardEndpoint } from '../db/endpoints.js';
import type { Config } from '../config/types.js';
import { problemsError, UserError } from '../errors.js';
import { quoteIdent, quoteTable } from '../db/ident.js';
import { analyseForeignKeys, crossingProblems } from '../foreign-keys/key-verdicts.js';
import { foreignKeys } from '../tables/foreign-keys.js';
import { introspect } from '../tables/introspect.js';
import { compareTables } from '../tables/drift.js';
import type { Model } from '../tables/model.js';
import { routeChain } from '../tables/scope.js';

/**
 * Source rows that belong to no unit would silently never be copied: refuse before moving anything.
 * `counted`: NULL-key rows per table the inventory already counted (its NULL group): no second scan.
 */
export async function checkSourceRows(source: pg.ClientBase, model: Model, counted?: ReadonlyMap<string, number>): Promise<void> {
  const problems: string[] = [];
  for (const t of model.sharded) {
    const r = t.config.route;
    let sql: string;
    let what: string;
    let known: number | undefined;
    if (t.config.routes) {
      const cols = t.config.routes.map((x) => (x.kind === 'latlng' ? x.lat : x.column));
      sql = `SELECT count(*) AS n FROM ${quoteTable(t.name)} WHERE num_nonnulls(${cols.map(quoteIdent).join(', ')}) = 0`;
      what = `NULL in every route column (${cols.join(', ')})`;
      for (const x of t.config.routes) if (x.kind === 'cell') problems.push(...(await offResolution(source, t.name, x.column, x.resolution)));
    } else if (r.kind === 'key' || r.kind === 'cell') {
      sql = `SELECT count(*) AS n FROM ${quoteTable(t.name)} WHERE ${quoteIdent(r.column)} IS NULL`;
      what = `a NULL ${r.column}`;
      known = counted?.get(t.name);
    } else if (r.kind === 'latlng') {
      sql = `SELECT count(*) AS n FROM ${quoteTable(t.name)} WHERE ${quoteIdent(r.lat)} IS NULL OR ${quoteIdent(r.lng)} IS NULL`;
      what = `a NULL ${r.lat} or ${r.lng}`;
    } else if (r.kind === 'via') {
      const parent = routeChain(model.config, t.config)[1]!;
      sql = `SELECT count(*) AS n FROM ${quoteTable(t.name)} c WHERE NOT EXISTS (
               SELECT 1 FROM ${quoteTable(`${parent.schema}.${parent.name}`)} p WHERE p.${quoteIdent(r.parentColumn)} = c.${quoteIdent(r.column)})`;
      what = `a ${r.column} with no row in ${r.parent}`;
    } else continue;
    const n = known ?? Number((await source.query(sql)).rows[0].n);
    if (n > 0) problems.push(`source: table ${t.name}: ${n} row${n === 1 ? ' has' : 's have'} ${what}; they belong to no unit and would not be copied`);
    if (r.kind === 'cell' && !t.config.routes) problems.push(...(await offResolution(source, t.name, r.column, r.resolution)));
  }
  if (problems.length) {
    throw problemsError('blocked', problems, `source: ${problems.length} tables have rows that belong to no unit`,
      'fix or delete those rows on the source, then run again');
  }
}

/**
 * A unit's rows of an H3 index column are found by the index range of its descendants at the
 * table's cellResolution; an index at any other resolution (or not an H3 cell index at all) falls
 * outside every range and would silently stay behind. Bits 52–55 hold the resolution, 59–62 the mode.
 */
async function offResolution(source: pg.ClientBase, table: string, column: string, res: number): Promise<string[]> {
  const col = quoteIdent(column);
  const r = await source.query<{ n: string; example: string | null }>(
    `SELECT count(*) AS n, min(lower(to_hex(${col}))) AS example FROM ${quoteTable(table)}
      WHERE ${col} IS NOT NULL AND (((${col} >> 52) & 15) <> ${res} OR ((${col} >> 59) & 15) <> 1)`,
  );
  const n = Number(r.rows[0]!.n);
  if (n === 0) return [];
  return [`source: table ${table}: ${n} row${n === 1 ? ' has' : 's have'} an H3 index in ${column} that is not a cell of resolution ${res} (cellResolution), e.g. ${r.rows[0]!.example}; they would not be copied`];
}

/**
 * Foreign keys whose rows would have no parent on their shard (the parent is in another unit, or in
 * a table shardctl does not copy) refuse the migration before anything is written (exit 3), naming
 * each key, its tables and rows, with the ways forward. `session` has the cell tables prepared.
 */
export async function checkCrossingKeys(session: pg.ClientBase, model: Model): Promise<void> {
  const keys = (await analyseForeignKeys(session, model)).filter((k) => k.blocking);
  if (!keys.length) return;
  const details = crossingProblems(keys).flatMap((p, i) => [p, ...keys[i]!.waysForward.map((w) => `  way forward: ${w}`)]);
  const summary = keys.length === 1 ? crossingProblems(keys)[0]! : `${keys.length} foreign keys would break on the shards`;
  throw new UserError('blocked', `source: ${summary}; nothing was written`, {
    details: keys.length === 1 ? details.slice(1) : details,
    hint: `shardctl plan --config ${model.config.file} shows every foreign key and the rows that cross`,
  });
}

/** The same check in a session of its own (the lat/lng cells computed for it). */
export async function checkCrossingKeysOn(source: Endpoint, model: Model): Promise<void> {
  // no key, nothing to count: spare computing the cell of every lat/lng row (the staging computes them once more)
  if (!model.foreignKeys.length) return;
  await withClient(source, async (c) => {
    const reader = model.cellSpecs.length ? await connect(source) : undefined;
    try {
      if (reader) await prepareCells(c, reader, model);
      await checkCrossingKeys(c, model);
    } finally {
      await reader?.end();
    }
  });
}

/**
 * Each target shard must have every configured table with the source's columns and types, and none
 * of the foreign keys the config accepts as crossing units (a shard lacks those parents).
 */
export async function checkShardSchema(shard: string, client: pg.ClientBase, model: Model): Promise<string[]> {
  const infos = await introspect(client, model.tables.map((t) => t.name));
  const drift = model.tables.flatMap((t) => compareTables(t.info, infos.get(t.name), `shard ${shard}`).filter((d) => d.blocking).map((d) => d.message));
  if (drift.length) return drift;
  const present = await foreignKeys(client, model.tables.map((t) => t.name));
  return present
    .filter((k) => model.table(k.table).config.crossingKeys.includes(k.name))
    .map((k) => `shard ${shard}: table ${k.partition ?? k.table} has foreign key ${k.name}, which ${model.config.file} accepts as crossing units (crossingKeys); ` +
      `drop it there: ALTER TABLE ${k.partition ?? k.table} DROP CONSTRAINT ${quoteIdent(k.name)}`);
}

export function schemaError(problems: string[], config: Config) {
  const keysOnly = problems.every((p) => p.includes('(crossingKeys)'));
  return problemsError('blocked', problems, `${problems.length} schema problems on the shards`, keysOnly
    ? 'a row on a shard may reference a parent on another shard through these keys; nothing was written'
    : `create the tables on the shards with the source's definitions (${config.file} names them)`);
}

/**
 * Every shard, concurrently: reachable, the schema fits (else exit 3 listing every problem), and
 * no rows of units that neither route nor are placed there (copying beside them would put a unit
 * on two shards). Returns, per shard, the units it holds rows of that `placedHere` does not say
 * (rows a lost journal left, or a crash between a batch's commit and its journal), read by that
 * same scan: a batch of units its shard holds none of skips the DELETE of their rows there
 * (migrate/copy.ts). The units placed there are the catalog's to tell: not kept twice in memory.
 */
export async function checkShards(
  config: Config,
  model: Model,
  belongs: (unit: string, shard: string) => boolean,
  placedHere: (unit: string, shard: string) => boolean = () => false,
  sessions: Sessions = freshSessions,
): Promise<Map<string, Set<string>>> {
  // per shard, the units it holds rows of without a placement there (none on a first migration)
  const present = new Map(config.shards.map((s) => [s.id, new Set<string>()]));
  const problems = (
    await Promise.all(
      config.shards.map(async (s) => {
        const ep = shardEndpoint(config, s.id);
        const schema = await sessions.use(ep, (c) => checkShardSchema(s.id, c, model));
        if (schema.length) return schema;
        const strays = present.get(s.id)!;
        return foreignRows(model, s.id, ep, (u) => belongs(u, s.id), (u) => void (placedHere(u, s.id) || strays.add(u)), sessions);
      }),
    )
  ).flat();
  if (problems.some((p) => p.includes('already holds rows'))) {
    throw problemsError('blocked', problems, `${problems.length} shards hold rows they should not`,
      'those rows were not placed by shardctl: remove them, or restore the topology they were placed with');
  }
  if (problems.length) throw schemaError(problems, config);
  return present;
}
