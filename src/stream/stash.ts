import type pg from 'pg';
import type { TableModel, ViaChild } from '../tables/model.js';
import { lsnText, type Lsn } from '../db/lsn.js';
import { selectByColumnSql } from './statements.js';

/** A row as a shard printed it (text of each column), with its table. */
export interface MovedRow {
  table: string;
  row: Record<string, string | null>;
}

/** Reads rows on one shard (in its open transaction). */
export type ReadRows = (text: string, values: unknown[]) => Promise<pg.QueryResult>;

/**
 * A row and the rows that reach it through `via` tables on the same shard, parents before children
 * (level by level): what moves with the row, or goes with it. Delete them in reverse order.
 */
export async function withDescendants(read: ReadRows, children: ReadonlyMap<string, readonly ViaChild[]>, t: TableModel, root: Record<string, string | null>): Promise<MovedRow[]> {
  const rows: MovedRow[] = [{ table: t.name, row: root }];
  let level: MovedRow[] = rows.slice();
  while (level.length) {
    const next: MovedRow[] = [];
    for (const parent of level) {
      for (const c of children.get(parent.table) ?? []) {
        const v = parent.row[c.parentColumn];
        if (v === null || v === undefined) continue;
        const got = (await read(selectByColumnSql(c.table, c.column), [[v]])).rows as Record<string, string | null>[];
        for (const row of got) next.push({ table: c.table.name, row });
      }
    }
    rows.push(...next);
    level = next;
  }
  return rows;
}

/**
 * The stash for moved rows (follow_stash): a shard giving rows away in a cross-shard move keeps a
 * copy in the same transaction as its delete, so the receiving shard can still build them if a
 * crash falls between the two shards' commits (the replay finds the rows gone from the giver).
 */
export const STASH_SQL = 'INSERT INTO shardctl.follow_stash (slot, lsn, seq, rows) VALUES ($1, $2, $3, $4::jsonb)';

/** STASH_SQL's values: the rows given away by the source transaction `txn` for the row `key` of `t`. */
export const stashValues = (slot: string, txn: Lsn, seq: number, t: TableModel, key: string[], rows: MovedRow[]): unknown[] => [
  slot,
  lsnText(txn),
  seq,
  JSON.stringify({ table: t.name, key, rows }),
];

/** The rows a shard stashed for the row `key` of `t` in the source transaction `txn`, if any. */
export async function stashedRows(read: ReadRows, slot: string, t: TableModel, key: string[], txn: Lsn): Promise<MovedRow[] | undefined> {
  const r = await read('SELECT rows FROM shardctl.follow_stash WHERE slot = $1 AND lsn = $2 ORDER BY seq', [slot, lsnText(txn)]);
  for (const { rows } of r.rows as { rows: { table: string; key: string[]; rows: MovedRow[] } }[]) {
    if (rows.table === t.name && rows.key.join('\0') === key.join('\0')) return rows.rows;
  }
  return undefined;
}

/** Stashed rows of transactions before `before` (every shard has committed them) are no longer needed. */
export const pruneStash = (read: ReadRows, slot: string, before: Lsn) =>
  read('DELETE FROM shardctl.follow_stash WHERE slot = $1 AND lsn < $2', [slot, lsnText(before)]);
