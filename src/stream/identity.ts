import type pg from 'pg';
import { quoteTable } from '../db/ident.js';

/**
 * How the follower finds the row a streamed UPDATE or DELETE is about, decided by the table's
 * replica identity on the source (what the old-row tuple of the stream carries):
 *  - 'key': the primary key (REPLICA IDENTITY DEFAULT, or USING an index whose columns include every
 *    primary key column: the old tuple then carries the key whenever it changes);
 *  - 'full': no primary key, REPLICA IDENTITY FULL: the old tuple is the whole row, and the follower
 *    changes exactly one shard row equal to it in every column (NULL-safe; duplicates are alike).
 */
export type RowIdentity = 'key' | 'full';

export interface TableIdentity {
  readonly table: string;
  /** d default, f full, i index, n nothing (pg_class.relreplident) */
  readonly ident: string;
  readonly pk: readonly string[];
  /** the columns of the replica identity index (ident 'i') */
  readonly indexColumns: readonly string[];
  readonly indexName: string | null;
  /** leaf partitions whose replica identity is not FULL (a partitioned table without a key needs FULL on each) */
  readonly partitionsNotFull: readonly string[];
}

export async function replicaIdentities(c: pg.ClientBase, tables: readonly string[]): Promise<TableIdentity[]> {
  const r = await c.query(
    `SELECT n.nspname || '.' || c.relname AS t, c.relreplident AS ident,
            coalesce((SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_index i JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY (i.indkey)
                       WHERE i.indrelid = c.oid AND i.indisprimary), '{}') AS pk,
            coalesce((SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_index i JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY (i.indkey)
                       WHERE i.indrelid = c.oid AND i.indisreplident), '{}') AS index_columns,
            (SELECT ic.relname FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = c.oid AND i.indisreplident) AS index_name,
            coalesce((SELECT array_agg((pn.nspname || '.' || pc.relname)::text ORDER BY pc.relname)
                        FROM pg_partition_tree(c.oid) p JOIN pg_class pc ON pc.oid = p.relid JOIN pg_namespace pn ON pn.oid = pc.relnamespace
                       WHERE p.isleaf AND p.relid <> c.oid AND pc.relreplident <> 'f'), '{}') AS partitions_not_full
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname || '.' || c.relname = ANY($1::text[])`,
    [tables],
  );
  return r.rows.map((x) => ({ table: x.t, ident: x.ident, pk: x.pk, indexColumns: x.index_columns, indexName: x.index_name, partitionsNotFull: x.partitions_not_full }));
}

/** What stops streaming these tables' updates and deletes, one line each with the statement that fixes it. */
export function identityProblems(ids: readonly TableIdentity[], label: string, via: ReadonlySet<string>): string[] {
  const problems: string[] = [];
  for (const r of ids) {
    const t = quoteTable(r.table);
    if (!r.pk.length) {
      if (r.ident !== 'f') {
        problems.push(`${label}: table ${r.table} has no primary key, so the follower cannot tell which row a streamed update or delete is about; fix: ALTER TABLE ${t} REPLICA IDENTITY FULL; (or add a primary key: ALTER TABLE ${t} ADD PRIMARY KEY (…);)`);
      } else if (r.partitionsNotFull.length) {
        problems.push(`${label}: table ${r.table} has no primary key and its partitions ${r.partitionsNotFull.join(', ')} are not REPLICA IDENTITY FULL; fix: ALTER TABLE … REPLICA IDENTITY FULL; on each (or add a primary key)`);
      } else if (via.has(r.table)) {
        problems.push(`${label}: table ${r.table} has no primary key and reaches its unit through a parent row (via), which the follower cannot re-prove at cutover; fix: ALTER TABLE ${t} ADD PRIMARY KEY (…); (or move it with plain shardctl migrate while writes to it are stopped)`);
      }
      continue;
    }
    if (r.ident === 'i' && !r.pk.every((k) => r.indexColumns.includes(k))) {
      // the old-row tuple would carry the index's columns, not the key the follower finds rows by
      problems.push(`${label}: table ${r.table} has REPLICA IDENTITY USING INDEX ${r.indexName} (${r.indexColumns.join(', ')}), which does not carry its primary key (${r.pk.join(', ')}) that the follower finds rows by; fix: ALTER TABLE ${t} REPLICA IDENTITY DEFAULT;`);
    } else if (r.ident === 'n') {
      problems.push(`${label}: table ${r.table} has REPLICA IDENTITY NOTHING, so its updates and deletes cannot be streamed; fix: ALTER TABLE ${t} REPLICA IDENTITY DEFAULT;`);
    }
  }
  return problems;
}

/** How rows of a table with this primary key are found (the preflight refused every other case). */
export const rowIdentity = (primaryKey: readonly string[]): RowIdentity => (primaryKey.length ? 'key' : 'full');
