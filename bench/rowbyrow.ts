import pg from 'pg';
import { destroy, withClient, quoteIdent, quoteTable, startupOptions, createRouter, type TableModel, deleteSql, scopeOf, selectSql } from '../src/index.js';
import type { BenchPlan } from './fleet.js';

/** The seed's tables for the sample: orders, then their items (parents first). */
export const SAMPLE_TABLES = ['public.orders', 'public.order_items'] as const;

export type RowByRowMode = 'autocommit' | 'transaction';

export interface RowByRowSample {
  units: string[];
  /** rows per table the sample holds */
  rows: Record<string, number>;
  total: number;
}

/** Whole restaurants, in unit order, until their orders + order_items reach `sampleRows`. */
export async function pickSample(plan: BenchPlan, sampleRows: number): Promise<RowByRowSample> {
  const tables = SAMPLE_TABLES.map((n) => plan.model.table(n));
  const perUnit = new Map<string, Record<string, number>>();
  await withClient(plan.source, async (c) => {
    for (const t of tables) {
      const s = scopeOf(plan.model.ctx, t.config);
      const r = await c.query<{ unit: string; n: string }>(`SELECT ${s.unit} AS unit, count(*) AS n FROM ${s.from} WHERE ${s.filter} GROUP BY 1`);
      for (const row of r.rows) (perUnit.get(row.unit) ?? perUnit.set(row.unit, {}).get(row.unit)!)[t.name] = Number(row.n);
    }
  });
  const sample: RowByRowSample = { units: [], rows: Object.fromEntries(tables.map((t) => [t.name, 0])), total: 0 };
  for (const unit of [...perUnit.keys()].sort((a, b) => Number(a) - Number(b) || a.localeCompare(b))) {
    if (sample.total >= sampleRows) break;
    sample.units.push(unit);
    for (const [t, n] of Object.entries(perUnit.get(unit)!)) {
      sample.rows[t] = (sample.rows[t] ?? 0) + n;
      sample.total += n;
    }
  }
  return sample;
}

/**
 * The seed's migration tool (seeds/000, migrateTable): per restaurant and table, SELECT its rows from
 * the source, then one parameterised INSERT per row into the shard. `autocommit` makes every INSERT
 * its own transaction (the approach NOTES-COPY measured); `transaction` wraps each restaurant's table
 * in one transaction, as the Go code literally does. Values travel as text, as lib/pq hands them over.
 *
 * It runs on a migrated fleet: the sample's rows are first deleted from their shard (untimed), then
 * re-inserted row by row (timed), so the shard ends holding exactly what it held before.
 * Node's pg sends Parse/Bind/Execute/Sync in one round trip where lib/pq, unprepared, needs two: if
 * anything this flatters the row-by-row rate.
 */
export async function rowByRow(plan: BenchPlan, sample: RowByRowSample, mode: RowByRowMode, signal?: AbortSignal): Promise<{ rows: number; seconds: number }> {
  const tables = SAMPLE_TABLES.map((n) => plan.model.table(n));
  const router = createRouter(plan.config);
  const shardOf = (u: string) => plan.shards.find((s) => s.id === router.shardFor(u))!;
  const clients = new Map<string, pg.Client>();
  const open = async (key: string, url: string) => {
    let c = clients.get(key);
    if (!c) {
      // every value as its text form, like Go's []byte scan of lib/pq results
      c = new pg.Client({ connectionString: url, options: startupOptions(), application_name: 'shardctl bench row-by-row', types: { getTypeParser: () => (v: string) => v } });
      c.on('error', () => undefined);
      clients.set(key, c);
      await c.connect();
    }
    return c;
  };
  const abort = () => clients.forEach(destroy);
  signal?.addEventListener('abort', abort, { once: true });
  try {
    const src = await open('source', plan.source.url);
    // untimed: make room on the shards, children first
    for (const u of sample.units) {
      const dst = await open(shardOf(u).id, shardOf(u).endpoint.url);
      for (const t of [...tables].reverse()) await dst.query(deleteSql(t.config, scopeOf(plan.model.ctx, t.config, [u])));
    }
    const started = performance.now();
    let rows = 0;
    for (const u of sample.units) {
      const dst = await open(shardOf(u).id, shardOf(u).endpoint.url);
      for (const t of tables) {
        signal?.throwIfAborted();
        const read = await src.query<unknown[]>({ text: selectSql(scopeOf(plan.model.ctx, t.config, [u]), t.columns), rowMode: 'array' });
        const insert = insertSql(t);
        if (mode === 'transaction') await dst.query('BEGIN');
        for (const values of read.rows) {
          await dst.query(insert, values);
          rows++;
        }
        if (mode === 'transaction') await dst.query('COMMIT');
      }
    }
    return { rows, seconds: (performance.now() - started) / 1000 };
  } finally {
    signal?.removeEventListener('abort', abort);
    await Promise.all([...clients.values()].map((c) => c.end().catch(() => undefined)));
  }
}

function insertSql(t: TableModel): string {
  const cols = t.columns.map(quoteIdent).join(', ');
  const params = t.columns.map((_, i) => `$${i + 1}`).join(', ');
  return `INSERT INTO ${quoteTable(t.name)} (${cols}) VALUES (${params})`;
}
