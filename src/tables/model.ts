import type pg from 'pg';
import type { Config, H3Strategy, TableConfig } from '../config/types.js';
import { UserError } from '../errors.js';
import { cellTempName, type CellTableSpec } from './cells.js';
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
}

export async function loadModel(config: Config, source: pg.ClientBase, where = 'source'): Promise<Model> {
  const names = config.tables.map(qualifiedName);
  const infos = await introspect(source, names);
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
    keyType: (n) => {
      const t = table(n);
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
  };
}

export function columnType(info: TableInfo, column: string): string {
  const c = info.columns.find((x) => x.name === column);
  if (!c) throw new Error(`internal: ${info.table}.${column} missing`);
  return c.type;
}

export function h3Strategy(config: Config): H3Strategy {
  if (config.strategy.kind !== 'h3') throw new Error('internal: not an h3 config');
  return config.strategy;
}

function routeProblems(t: TableConfig, info: TableInfo, infos: Map<string, TableInfo>, where: string): string[] {
  const name = qualifiedName(t);
  const has = (i: TableInfo, c: string) => i.columns.some((x) => x.name === c);
  const missing = (c: string, i = info) => `${where}: table ${i.table} has no column ${c}`;
  const out: string[] = [];
  const r = t.route;
  if (info.primaryKey.length === 0) out.push(`${where}: table ${name} has no primary key (shardctl needs one to copy and compare rows exactly)`);
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
