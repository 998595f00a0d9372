import type pg from 'pg';
import { quoteIdent, quoteLiteral, quoteTable } from '../db/ident.js';
import type { TableModel } from '../tables/model.js';

/**
 * COPY does not advance serial/identity sequences. A shard that will take new inserts must not hand
 * out ids that already exist anywhere, so each sequence on the shard is set to the greater of the
 * source's sequence and the shard's own max. Returns how many sequences were set.
 */
export async function alignSequences(source: pg.ClientBase, shard: pg.ClientBase, tables: readonly TableModel[]): Promise<number> {
  let n = 0;
  for (const t of tables) {
    for (const c of t.info.columns) {
      if (!c.sequence) continue;
      const src = await source.query(`SELECT last_value, is_called FROM ${c.sequence}`);
      const srcLast = src.rows[0].is_called ? BigInt(src.rows[0].last_value) : BigInt(src.rows[0].last_value) - 1n;
      const seq = await shard.query(`SELECT pg_get_serial_sequence($1, $2) AS s`, [quoteTable(t.name), c.name]);
      const shardSeq = seq.rows[0].s as string | null;
      if (!shardSeq) continue;
      const max = await shard.query(`SELECT max(${quoteIdent(c.name)})::text AS m FROM ${quoteTable(t.name)}`);
      const shardMax = max.rows[0].m === null ? 0n : BigInt(max.rows[0].m);
      const value = srcLast > shardMax ? srcLast : shardMax;
      if (value < 1n) continue;
      await shard.query(`SELECT setval(${quoteLiteral(shardSeq)}, ${value}, true)`);
      n++;
    }
  }
  return n;
}
