import type { Config } from '../../src/config/types.js';
import type { ColumnInfo } from '../../src/tables/introspect.js';
import type { Model, TableModel } from '../../src/tables/model.js';

/** A table's columns as `name: type` (format_type spelling), the primary key's columns marked with `*`. */
export type Columns = Record<string, string>;

/**
 * The schema model the engine reads from the source (loadModel), built by hand for tests without a
 * server: each configured table with the given columns (absent tables get `id*: bigint`). Only what
 * routing and statement building read is filled in.
 */
export function modelOf(config: Config, tables: Record<string, Columns> = {}): Model {
  const all: TableModel[] = config.tables.map((t) => {
    const name = `${t.schema}.${t.name}`;
    const spec = tables[name] ?? tables[t.name] ?? { 'id*': 'bigint' };
    const columns: ColumnInfo[] = Object.entries(spec).map(([c, type]) => ({
      name: c.replace(/\*$/, ''),
      type,
      notNull: c.endsWith('*'),
      hasDefault: false,
      generated: false,
    }));
    const primaryKey = Object.keys(spec).filter((c) => c.endsWith('*')).map((c) => c.slice(0, -1));
    return { config: t, name, info: { table: name, columns, primaryKey, indexes: [] }, columns: columns.map((c) => c.name) };
  });
  const byName = new Map(all.map((t) => [t.name, t]));
  return {
    config,
    tables: all,
    sharded: all.filter((t) => t.config.route.kind !== 'reference'),
    reference: all.filter((t) => t.config.route.kind === 'reference'),
    ctx: undefined as unknown as Model['ctx'], // scopes are not built without a server
    table: (n) => byName.get(n) ?? assertNever(`unknown table ${n}`),
    cellSpecs: [],
    foreignKeys: [],
  };
}

const assertNever = (why: string): never => {
  throw new Error(why);
};
