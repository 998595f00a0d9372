import type pg from 'pg';
import { blockedError } from '../errors.js';

/** Columns (name and type) of each configured table as the stream must describe them. */
export type Shapes = Map<string, string>;

export async function sourceShapes(c: pg.ClientBase, tables: readonly string[]): Promise<Shapes> {
  const r = await c.query(
    `SELECT n.nspname || '.' || c.relname AS t,
            string_agg(a.attname || ':' || a.atttypid, ',' ORDER BY a.attnum) AS shape
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
      WHERE n.nspname || '.' || c.relname = ANY($1::text[]) GROUP BY 1`,
    [tables],
  );
  return new Map(r.rows.map((x) => [x.t as string, x.shape as string]));
}

export const shapeOf = (columns: readonly { name: string; typeOid: number }[]) => columns.map((c) => `${c.name}:${c.typeOid}`).join(',');

/**
 * A relation message that does not describe the table as it was when the follower started means
 * DDL ran on the source: the shards' tables no longer match what the stream carries.
 */
export function ddlError(table: string, was: string | undefined, now: string) {
  const names = (s: string | undefined) => new Set((s ?? '').split(',').filter(Boolean).map((x) => x.split(':')[0]!));
  const a = names(was);
  const b = names(now);
  const added = [...b].filter((x) => !a.has(x));
  const dropped = [...a].filter((x) => !b.has(x));
  const what = [added.length && `added ${added.join(', ')}`, dropped.length && `dropped ${dropped.join(', ')}`].filter(Boolean).join('; ') || 'a column type changed';
  return blockedError(`source: table ${table} changed while following (${what}); logical replication does not carry DDL`, {
    hint: 'apply the same change to the table on every shard, then run migrate --follow again (should it stop again, start over: migrate --abandon, then migrate --follow)',
  });
}

export const truncateError = (tables: readonly string[]) =>
  blockedError(`source: TRUNCATE of ${tables.join(', ')} cannot be streamed to the shards (it would empty every unit at once)`, {
    hint: 'start the online migration over: shardctl migrate --abandon, then shardctl migrate --follow (a fresh copy)',
  });
