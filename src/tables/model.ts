import type pg from 'pg';
import type { Config, H3Strategy, TableConfig } from '../config/types.js';
import { UserError } from '../errors.js';
import { quoteIdent, quoteTable } from '../db/ident.js';
import { cellTempName, type CellTableSpec } from './cells.js';
import { foreignKeys, keyName, type ForeignKey } from './foreign-keys.js';
import { copyColumns, introspect, type TableInfo } from './introspect.js';
import { qualifiedName, type ScopeContext } from './scope.js';

export interface TableModel {
  readonly config: TableConfig;
  /** schema.table */
  readonly name: string;
  /** its definition on the source */
  readonly info: TableInfo;
  /** columns COPY moves and checksums hash, in canonical order */
  readonly columns: readonly string[];
}

/**
 * The configured tables as they are on the source: the one view of the schema every command works
 * from. Built once per run; problems found here are configuration problems (exit 2), reported together.
 */
export interface Model {
  readonly config: Config;
  readonly tables: readonly TableModel[];
  readonly sharded: readonly TableModel[];
  readonly reference: readonly TableModel[];
  readonly ctx: ScopeContext;
  table(name: string): TableModel;
  /** lat/lng tables, whose cells a session must materialise before querying them */
  readonly cellSpecs: readonly CellTableSpec[];
  /** every foreign key declared on a configured table or one of its partitions (on the source) */
  readonly foreignKeys: readonly ForeignKey[];
}

export async function loadModel(config: Config, source: pg.ClientBase, where = 'source'): Promise<Model> {
  const names = config.tables.map(qualifiedName);
  const infos = await introspect(source, names);
  const fks = await foreignKeys(source, names);
  const problems: string[] = [];
  const tables: TableModel[] = [];
  for (const t of config.tables) {
    const name = qualifiedName(t);
    const info = infos.get(name);
    if (!info) {
      problems.push(`${where}: table ${name} does not exist`);
      continue;
    }
    problems.push(...routeProblems(t, info, infos, where));
    problems.push(...keyProblems(config, t, fks, where));
    problems.push(...(await viaProblems(source, t, info, infos, where)));
    tables.push({ config: t, name, info, columns: copyColumns(info) });
  }
  if (problems.length > 0) {
    throw new UserError('config', problems.length === 1 ? problems[0]! : `${config.file}: ${problems.length} tables do not match the ${where}`, {
      details: problems.length === 1 ? [] : problems,
      hint: `fix ${config.file} or the ${where} schema`,
    });
  }
  const byName = new Map(tables.map((t) => [t.name, t]));
  const table = (n: string) => {
    const t = byName.get(n);
    if (!t) throw new Error(`internal: unknown table ${n}`);
    return t;
  };
  const cellSpecs: CellTableSpec[] = tables.flatMap((t) =>
    t.config.route.kind === 'latlng'
      ? [{ table: t.name, pk: t.info.primaryKey[0]!, pkType: columnType(t.info, t.info.primaryKey[0]!), lat: t.config.route.lat, lng: t.config.route.lng }]
      : [],
  );
  const ctx: ScopeContext = {
    config,
    keyType: (n, column) => {
      const t = table(n);
      if (column !== undefined) return columnType(t.info, column);
      if (t.config.route.kind !== 'key') throw new Error(`internal: ${n} has no key column`);
      return columnType(t.info, t.config.route.column);
    },
    cellTable: (n) => ({ temp: cellTempName(n), pk: table(n).info.primaryKey[0]! }),
  };
  return {
    config,
    tables,
    sharded: tables.filter((t) => t.config.route.kind !== 'reference'),
    reference: tables.filter((t) => t.config.route.kind === 'reference'),
    ctx,
    table,
    cellSpecs,
    foreignKeys: fks,
  };
}

export function columnType(info: TableInfo, column: string): string {
  const c = info.columns.find((x) => x.name === column);
  if (!c) throw new Error(`internal: ${info.table}.${column} missing`);
  return c.type;
}

/** A `via` table as seen from its parent: the child table, its column and the parent column it matches. */
export interface ViaChild {
  readonly table: TableModel;
  readonly column: string;
  readonly parentColumn: string;
}

/** The `via` children of every parent table, by the parent's name (the followers move a row with its descendants). */
export function viaChildren(model: Model): Map<string, ViaChild[]> {
  const out = new Map<string, ViaChild[]>();
  for (const t of model.sharded) {
    const r = t.config.route;
    if (r.kind !== 'via') continue;
    const list = out.get(r.parent) ?? [];
    list.push({ table: t, column: r.column, parentColumn: r.parentColumn });
    out.set(r.parent, list);
  }
  return out;
}

export function h3Strategy(config: Config): H3Strategy {
  if (config.strategy.kind !== 'h3') throw new Error('internal: not an h3 config');
  return config.strategy;
}

function routeProblems(t: TableConfig, info: TableInfo, infos: Map<string, TableInfo>, where: string): string[] {
  const name = qualifiedName(t);
  const out: string[] = [];
  const r = t.route;
  // Copy, checksums and moves work on whole units and count duplicate rows (a SUM of row hashes), so
  // sharded tables need no key; reference tables are merged row by row on the shards, by primary key.
  if (info.primaryKey.length === 0 && r.kind === 'reference') {
    out.push(`${where}: reference table ${name} has no primary key (shardctl merges reference tables into the shards by primary key)`);
  }
  if (info.primaryKey.length === 0 && r.kind === 'latlng') {
    out.push(`${where}: table ${name} has no primary key (shardctl needs a single-column one to route rows by lat/lng)`);
  }
  for (const route of t.routes ?? [r]) out.push(...oneRouteProblems(name, route, info, infos, where));
  return out;
}

/** The columns one route needs, as problems (a table with several routes has each checked). */
function oneRouteProblems(name: string, r: TableConfig['route'], info: TableInfo, infos: Map<string, TableInfo>, where: string): string[] {
  const out: string[] = [];
  const has = (i: TableInfo, c: string) => i.columns.some((x) => x.name === c);
  const missing = (c: string, i = info) => `${where}: table ${i.table} has no column ${c}`;
  switch (r.kind) {
    case 'key':
      if (!has(info, r.column)) out.push(missing(r.column));
      break;
    case 'cell': {
      const c = info.columns.find((x) => x.name === r.column);
      if (!c) out.push(missing(r.column));
      else if (c.type !== 'bigint') out.push(`${where}: table ${name} column ${r.column} is ${c.type}; an H3 index column must be bigint`);
      break;
    }
    case 'latlng':
      for (const c of [r.lat, r.lng]) if (!has(info, c)) out.push(missing(c));
      if (info.primaryKey.length > 1) out.push(`${where}: table ${name} needs a single-column primary key to be routed by lat/lng`);
      break;
    case 'via': {
      if (!has(info, r.column)) out.push(missing(r.column));
      const parent = infos.get(r.parent);
      if (parent && !has(parent, r.parentColumn)) out.push(missing(r.parentColumn, parent));
      break;
    }
    case 'reference':
      break;
  }
  return out;
}

/** A via column the server cannot compare with its parent's (text = integer) would fail every scope's join. */
async function viaProblems(source: pg.ClientBase, t: TableConfig, info: TableInfo, infos: Map<string, TableInfo>, where: string): Promise<string[]> {
  const r = t.route;
  if (r.kind !== 'via') return [];
  const parent = infos.get(r.parent);
  const a = info.columns.find((c) => c.name === r.column);
  const b = parent?.columns.find((c) => c.name === r.parentColumn);
  if (!a || !b) return []; // reported by routeProblems
  try {
    await source.query(`EXPLAIN SELECT 1 FROM ${quoteTable(info.table)} c JOIN ${quoteTable(r.parent)} p ON p.${quoteIdent(b.name)} = c.${quoteIdent(a.name)}`);
    return [];
  } catch (e) {
    const err = e as { message?: string; code?: string };
    return [`${where}: table ${info.table}: via column ${a.name} (${a.type}) cannot be compared with ${r.parent}.${b.name} (${b.type}): ${err.message} [${err.code}]`];
  }
}

/**
 * A reference table is copied whole to every shard, but a sharded parent's rows exist on one shard
 * each: a reference table's foreign key to a sharded table would fail on every other shard. And a
 * configured crossing key must exist.
 */
function keyProblems(config: Config, t: TableConfig, fks: readonly ForeignKey[], where: string): string[] {
  const name = qualifiedName(t);
  const own = fks.filter((k) => k.table === name);
  const out: string[] = [];
  if (t.route.kind === 'reference') {
    for (const k of own) {
      const parent = config.tables.find((p) => qualifiedName(p) === k.ref);
      if (parent && parent.route.kind !== 'reference') {
        out.push(
          `${config.file}: reference table ${name} has foreign key ${keyName(k)} to sharded table ${k.ref}: ` +
            `a reference table is on every shard, ${k.ref}'s rows each on one; shard ${name} (key or via) or make ${k.ref} a reference table`,
        );
      }
    }
  }
  // the shards lack accepted crossing keys by design: only the source must declare them
  for (const c of where === 'source' ? t.crossingKeys : []) {
    if (!own.some((k) => k.name === c)) {
      out.push(`${config.file}: table ${name}: crossingKeys names ${c}, which is no foreign key of ${name} or its partitions on the source`);
    }
  }
  return out;
}
