import type { TableInfo } from './introspect.js';

export interface Drift {
  readonly table: string;
  /** blocks copying (missing table/column, other type); otherwise a difference verify reports */
  readonly blocking: boolean;
  readonly message: string;
}

/**
 * Differences between a table on the source (or a reference shard) and on another server: columns
 * and their types, extra columns, the primary key and the index definitions. Column order is
 * ignored on purpose: shardctl names columns everywhere.
 */
export function compareTables(expected: TableInfo, actual: TableInfo | undefined, where: string): Drift[] {
  const table = expected.table;
  if (!actual) return [{ table, blocking: true, message: `${where}: table ${table} does not exist` }];
  const out: Drift[] = [];
  const cols = new Map(actual.columns.map((c) => [c.name, c]));
  for (const c of expected.columns) {
    const a = cols.get(c.name);
    if (!a) out.push({ table, blocking: !c.generated, message: `${where}: table ${table} has no column ${c.name}` });
    else if (a.type !== c.type) {
      out.push({ table, blocking: true, message: `${where}: table ${table} column ${c.name} is ${a.type}, expected ${c.type}` });
    }
  }
  const known = new Set(expected.columns.map((c) => c.name));
  for (const a of actual.columns) {
    if (known.has(a.name)) continue;
    const blocks = a.notNull && !a.hasDefault && !a.generated;
    out.push({
      table,
      blocking: blocks,
      message: `${where}: table ${table} has an extra column ${a.name} ${a.type}${blocks ? ' NOT NULL without a default' : ''}`,
    });
  }
  if (expected.primaryKey.join(',') !== actual.primaryKey.join(',')) {
    out.push({
      table,
      blocking: false,
      message: `${where}: table ${table} primary key is (${actual.primaryKey.join(', ') || 'none'}), expected (${expected.primaryKey.join(', ')})`,
    });
  }
  const idx = new Set(actual.indexes);
  for (const i of expected.indexes) if (!idx.has(i)) out.push({ table, blocking: false, message: `${where}: table ${table} lacks index ${i}` });
  const want = new Set(expected.indexes);
  for (const i of actual.indexes) if (!want.has(i)) out.push({ table, blocking: false, message: `${where}: table ${table} has an extra index ${i}` });
  return out;
}
