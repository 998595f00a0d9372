import pg from 'pg';
import type { Config } from '../../src/config/types.js';

/** Runs SQL on a server given by URL. */
export async function sql<T = any>(url: string, text: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(text, params)).rows;
  } finally {
    await c.end();
  }
}

/** Empties every configured table on every shard and drops the catalog: the fleet as before any migration. */
export async function resetShards(config: Config): Promise<void> {
  const tables = config.tables.map((t) => `"${t.schema}"."${t.name}"`).join(', ');
  await Promise.all(config.shards.map((s) => sql(s.primary, `TRUNCATE ${tables} CASCADE`)));
  await sql(config.catalog, 'DROP SCHEMA IF EXISTS shardctl CASCADE');
}

/**
 * A fingerprint of the row versions on every shard (count and sum of xmin per table): a rerun that
 * rewrote any row, even with identical contents, changes it.
 */
export async function rowVersions(config: Config): Promise<string> {
  const parts: string[] = [];
  for (const s of config.shards) {
    for (const t of config.tables) {
      const r = await sql(s.primary, `SELECT count(*) AS n, coalesce(sum(xmin::text::bigint), 0) AS x FROM "${t.schema}"."${t.name}"`);
      parts.push(`${s.id}.${t.name}:${r[0].n}:${r[0].x}`);
    }
  }
  return parts.join(' ');
}
