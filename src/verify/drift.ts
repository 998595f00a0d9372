import { compareTables } from '../tables/drift.js';
import type { TableInfo } from '../tables/introspect.js';
import type { TableModel } from '../tables/model.js';
import type { ServerScan } from '../unit-copy/scan.js';
import type { Finding } from './types.js';

type DriftFinding = Extract<Finding, { kind: 'drift' }>;

/**
 * Schema drift of the selected tables: columns, types, primary key and indexes of each shard
 * against the source, or (without a source) against the definition most shards share, so the
 * shard that differs is the one named. Column order never counts (shardctl names columns).
 */
export function compareSchemas(tables: readonly TableModel[], source: ServerScan | undefined, shards: readonly ServerScan[]): DriftFinding[] {
  const out: DriftFinding[] = [];
  for (const t of tables) {
    const expected = source ? t.info : majority(shards.flatMap((s) => (s.error ? [] : [s.infos.get(t.name)])));
    if (!expected) continue;
    for (const s of shards) {
      if (s.error) continue;
      for (const d of compareTables(expected, s.infos.get(t.name), `shard ${s.server}`)) {
        out.push({ kind: 'drift', table: t.name, shard: s.server, message: d.message, blocking: d.blocking });
      }
    }
  }
  return out;
}

/** The definition most servers share (ties: the first); undefined when no server has the table. */
export function majority(infos: (TableInfo | undefined)[]): TableInfo | undefined {
  const groups = new Map<string, { info: TableInfo; n: number }>();
  for (const i of infos) {
    if (!i) continue;
    const key = definitionKey(i);
    const g = groups.get(key) ?? groups.set(key, { info: i, n: 0 }).get(key)!;
    g.n++;
  }
  return [...groups.values()].reduce<{ info: TableInfo; n: number } | undefined>((a, g) => (!a || g.n > a.n ? g : a), undefined)?.info;
}

/** What drift compares of a table, as one string: column names and types, primary key, index definitions. */
export function definitionKey(i: TableInfo): string {
  return JSON.stringify([[...i.columns].map((c) => [c.name, c.type]).sort(), i.primaryKey, [...i.indexes].sort()]);
}
