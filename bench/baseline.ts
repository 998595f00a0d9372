import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pLimit from 'p-limit';
import type pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { connect, destroy, mayBypassTriggers, quoteIdent, quoteTable, scopeOf, selectSql } from '../src/index.js';
import type { BenchPlan } from './fleet.js';

export interface CopyTotals {
  rows: number;
  /** bytes of COPY text moved (sharded tables only, like MigrateResult.bytes) */
  bytes: number;
  perShard: { shard: string; rows: number; bytes: number; seconds: number }[];
}

/**
 * The raw baseline: for each shard, one `COPY (SELECT …) TO STDOUT` → `COPY … FROM STDIN` pipe per
 * table on two connections, with exactly the SELECT migrate issues (selectSql(scopeOf(…)): the key
 * filter `= ANY(units)`, order_items through its join to orders), the shard's units all at once,
 * shards run `concurrency` at a time, tables parents first. No catalog, no snapshot, no transaction
 * around the tables, no DELETE, no checksums. Reference tables are copied first (the foreign keys
 * need them) but, as in migrate's byte count, not counted. The target sessions copy the way migrate
 * does: without per-row triggers where the role may (src/foreign-keys/after-copy-check.ts), so the ratio
 * measures migrate's own overhead, not a difference in how rows are loaded.
 */
export async function rawBaseline(plan: BenchPlan, concurrency: number, signal?: AbortSignal): Promise<CopyTotals> {
  const limit = pLimit(concurrency);
  const perShard = await Promise.all(plan.shards.map((s) => limit(() => copyShard(plan, s, signal))));
  return { rows: perShard.reduce((n, s) => n + s.rows, 0), bytes: perShard.reduce((n, s) => n + s.bytes, 0), perShard };
}

async function copyShard(plan: BenchPlan, shard: BenchPlan['shards'][number], signal?: AbortSignal) {
  const started = performance.now();
  const app = { applicationName: `shardctl bench baseline ${shard.id}` };
  const src = await connect(plan.source, app);
  const dst = await connect(shard.endpoint, app).catch(async (e) => {
    await src.end();
    throw e;
  });
  if (await mayBypassTriggers(dst)) await dst.query('SET session_replication_role = replica');
  const abort = () => [src, dst].forEach(destroy);
  signal?.addEventListener('abort', abort, { once: true });
  let rows = 0;
  let bytes = 0;
  try {
    signal?.throwIfAborted();
    for (const t of plan.model.reference) {
      const cols = t.columns.map(quoteIdent).join(', ');
      await pipe(src, dst, `SELECT ${cols} FROM ${quoteTable(t.name)}`, `${quoteTable(t.name)} (${cols})`);
    }
    if (shard.units.length) {
      for (const t of plan.model.sharded) {
        signal?.throwIfAborted();
        const scope = scopeOf(plan.model.ctx, t.config, shard.units);
        const r = await pipe(src, dst, selectSql(scope, t.columns), `${quoteTable(t.name)} (${t.columns.map(quoteIdent).join(', ')})`);
        rows += r.rows;
        bytes += r.bytes;
      }
    }
  } catch (e) {
    abort();
    throw e;
  } finally {
    signal?.removeEventListener('abort', abort);
    await Promise.all([src.end().catch(() => undefined), dst.end().catch(() => undefined)]);
  }
  return { shard: shard.id, rows, bytes, seconds: (performance.now() - started) / 1000 };
}

/** pg-copy-streams end to end, counting bytes on the way (the same shape as src/copy/pipe.ts, written out here so the baseline owes nothing to the engine). */
async function pipe(src: pg.Client, dst: pg.Client, select: string, target: string): Promise<{ rows: number; bytes: number }> {
  const out = src.query(copyTo(`COPY (${select}) TO STDOUT`));
  const into = dst.query(copyFrom(`COPY ${target} FROM STDIN`));
  let bytes = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      bytes += chunk.length;
      done(null, chunk);
    },
  });
  await pipeline(out, meter, into);
  return { rows: into.rowCount, bytes };
}
