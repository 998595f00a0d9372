import type pg from 'pg';
import { connect, destroy, type Endpoint } from '../db/connect.js';
import { quoteIdent, quoteTable } from '../db/ident.js';
import { pipeCopy } from '../copy/pipe.js';
import { blockedError } from '../errors.js';
import { beginSnapshot } from '../db/snapshot.js';
import { tableChecksumSql } from '../tables/checksum.js';
import type { TableModel } from '../tables/model.js';

export interface ReferenceResult {
  table: string;
  rows: number;
  changed: boolean;
}

/**
 * Makes every reference table on one shard identical to the source, in one target transaction.
 * The source rows land in a temp table first; when the shard already matches nothing is written.
 * Otherwise rows are merged by primary key (delete the gone, upsert the rest) rather than
 * truncated, so sharded rows that reference them by foreign key are never in the way.
 */
export async function syncReferenceTables(
  tables: readonly TableModel[],
  source: Endpoint,
  target: Endpoint,
  signal?: AbortSignal,
  snapshot?: string,
): Promise<ReferenceResult[]> {
  if (tables.length === 0) return [];
  const src = await connect(source);
  let dst: pg.Client | undefined;
  const abort = () => [src, dst].forEach((c) => c && destroy(c));
  signal?.addEventListener('abort', abort, { once: true });
  try {
    dst = await connect(target);
    await beginSnapshot(src, snapshot);
    await dst.query('BEGIN');
    const out: ReferenceResult[] = [];
    for (const t of tables) {
      const cols = t.columns.map(quoteIdent).join(', ');
      const tmp = `pg_temp.${quoteIdent(`shardctl_ref_${t.name.replace(/\W/g, '_')}`)}`;
      await dst.query(`CREATE TEMP TABLE ${tmp} ON COMMIT DROP AS SELECT ${cols} FROM ${quoteTable(t.name)} WITH NO DATA`);
      const copied = await pipeCopy(src, dst, `SELECT ${cols} FROM ${quoteTable(t.name)}`, `${tmp} (${cols})`);
      const [want, have] = await Promise.all([
        src.query(tableChecksumSql(quoteTable(t.name), t.columns)),
        dst.query(tableChecksumSql(quoteTable(t.name), t.columns)),
      ]);
      const same = want.rows[0].rows === have.rows[0].rows && want.rows[0].checksum === have.rows[0].checksum;
      if (!same) {
        const pk = t.info.primaryKey.map(quoteIdent);
        const match = pk.map((k) => `s.${k} = t0.${k}`).join(' AND ');
        await dst.query(`DELETE FROM ${quoteTable(t.name)} AS t0 WHERE NOT EXISTS (SELECT 1 FROM ${tmp} s WHERE ${match})`);
        const nonKey = t.columns.filter((c) => !t.info.primaryKey.includes(c)).map(quoteIdent);
        const update = nonKey.length
          ? `DO UPDATE SET ${nonKey.map((c) => `${c} = EXCLUDED.${c}`).join(', ')}
             WHERE (${nonKey.map((c) => `t0.${c}`).join(', ')}) IS DISTINCT FROM (${nonKey.map((c) => `EXCLUDED.${c}`).join(', ')})`
          : 'DO NOTHING';
        await dst.query(`INSERT INTO ${quoteTable(t.name)} AS t0 (${cols}) SELECT ${cols} FROM ${tmp} ON CONFLICT (${pk.join(', ')}) ${update}`);
        const after = await dst.query(tableChecksumSql(quoteTable(t.name), t.columns));
        if (after.rows[0].rows !== want.rows[0].rows || after.rows[0].checksum !== want.rows[0].checksum) {
          throw blockedError(`${target.label}: reference table ${t.name} still differs from the source after the merge`);
        }
      }
      out.push({ table: t.name, rows: copied.rows, changed: !same });
    }
    await dst.query('COMMIT');
    await src.query('COMMIT');
    return out;
  } catch (e) {
    abort();
    throw e;
  } finally {
    signal?.removeEventListener('abort', abort);
    await Promise.all([src.end().catch(() => undefined), dst?.end().catch(() => undefined)]);
  }
}
