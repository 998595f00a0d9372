import type pg from 'pg';
import { quoteIdent, quoteTable } from '../db/ident.js';
import { partitionFilter, type ForeignKey } from '../tables/foreign-keys.js';
import type { Model, TableModel } from '../tables/model.js';
import { scopeOf } from '../tables/scope.js';

/**
 * How a foreign key among the configured tables fares once rows live on different shards:
 *  - `via`: the key the table is routed through, inside its unit by construction;
 *  - `reference`: the parent is a reference table, present whole on every shard;
 *  - `inside`: both tables sharded, and no source row's parent is in another unit;
 *  - `crossing`: rows whose parent belongs to another unit (their shard would lack the parent);
 *  - `unconfigured`: the parent is not a configured table, so no shard receives its rows.
 */
export type KeyVerdict = 'via' | 'reference' | 'inside' | 'crossing' | 'unconfigured';

export interface KeyAnalysis {
  /** the constraint name */
  key: string;
  table: string;
  /** set when the key is declared on this partition of `table` only */
  partition?: string;
  columns: string[];
  ref: string;
  refColumns: string[];
  verdict: KeyVerdict;
  /** crossing: rows whose parent is in another unit; unconfigured: rows with a non-NULL key */
  rows: number;
  /** units holding such rows */
  units: number;
  /** listed in the table's crossingKeys: left off the shards and unchecked */
  accepted: boolean;
  /** migrate refuses while this key is neither fixed nor accepted */
  blocking: boolean;
  /** for a blocking key: what the DBA can do, one line each */
  waysForward: string[];
}

/**
 * The schema analysis `plan` shows and `migrate` enforces: every foreign key declared on a configured
 * table or its partitions, whether it stays inside a unit, and, counted on the source data, the rows
 * whose parent is in another unit. `session` must have the lat/lng cell tables prepared (as for
 * `takeInventory`); one query per key that could cross.
 */
export async function analyseForeignKeys(session: pg.ClientBase, model: Model): Promise<KeyAnalysis[]> {
  const out: KeyAnalysis[] = [];
  for (const fk of model.foreignKeys) {
    const child = model.table(fk.table);
    const parent = fk.refConfigured ? model.table(fk.ref) : undefined;
    const accepted = child.config.crossingKeys.includes(fk.name);
    const base = {
      key: fk.name, table: fk.table, partition: fk.partition, columns: [...fk.cols], ref: fk.ref, refColumns: [...fk.refCols], accepted,
    };
    let verdict: KeyVerdict;
    let counted = { rows: 0, units: 0 };
    if (!parent) {
      verdict = 'unconfigured';
      counted = await countWithKey(session, model, child, fk);
    } else if (parent.config.route.kind === 'reference') verdict = 'reference';
    else if (isViaKey(child, fk)) verdict = 'via';
    else {
      counted = await countCrossing(session, model, child, parent, fk);
      verdict = counted.rows > 0 ? 'crossing' : 'inside';
    }
    const blocking = !accepted && counted.rows > 0;
    const analysis: KeyAnalysis = { ...base, verdict, ...counted, blocking, waysForward: [] };
    if (blocking) analysis.waysForward = waysForward(analysis, model.config.file, child);
    out.push(analysis);
  }
  return out;
}

/** What a DBA can do about a blocking key, as one line each. */
function waysForward(k: KeyAnalysis, file: string, child: TableModel): string[] {
  if (child.config.route.kind === 'reference') return [`configure ${k.ref} as a reference table in ${file}`];
  const where = k.partition ? `${k.table} (declared on partition ${k.partition})` : k.table;
  const accept = `accept it: add ${k.key} to crossingKeys of table ${k.table} in ${file}, and drop it on the shards ` +
    `(ALTER TABLE ${k.partition ?? k.table} DROP CONSTRAINT ${quoteIdent(k.key)}); the monolith keeps enforcing it until cutover, the application after`;
  if (k.verdict === 'unconfigured') {
    return [`configure ${k.ref} (as a reference table if every shard needs all of it, or sharded with ${where})`, accept];
  }
  return [
    `route ${where} by the unit of ${k.ref} instead, if every row's parent should be in the row's own unit`,
    `make ${k.ref} a reference table, if it is small and shared by every unit`,
    accept,
  ];
}

/** The key is the very column the table is routed through: inside its unit by construction. */
function isViaKey(child: TableModel, fk: ForeignKey): boolean {
  const r = child.config.route;
  return r.kind === 'via' && !fk.partition && r.parent === fk.ref && fk.cols.length === 1 && fk.cols[0] === r.column && fk.refCols[0] === r.parentColumn;
}

const notNull = (fk: ForeignKey) => fk.cols.map((c) => `t0.${quoteIdent(c)} IS NOT NULL`).join(' AND ');

async function countCrossing(session: pg.ClientBase, model: Model, child: TableModel, parent: TableModel, fk: ForeignKey) {
  const cs = scopeOf(model.ctx, child.config);
  const ps = scopeOf(model.ctx, parent.config);
  const k = (i: number) => `k${i}`;
  const childCols = fk.cols.map((c, i) => `t0.${quoteIdent(c)} AS ${k(i)}`).join(', ');
  const parentCols = fk.refCols.map((c, i) => `t0.${quoteIdent(c)} AS ${k(i)}`).join(', ');
  const using = fk.cols.map((_, i) => k(i)).join(', ');
  // two integer keys are compared as themselves: equal integers have equal text, and casting
  // every row's key to text was most of the query (groupedByUnit, scope.ts)
  const [cu, pu] = cs.key && ps.key ? [cs.key, ps.key] : [cs.unit, ps.unit];
  const r = await session.query(
    `WITH c AS (SELECT ${cu} AS unit, ${childCols} FROM ${cs.from} WHERE ${notNull(fk)}${partitionFilter(fk)}),
          p AS (SELECT ${pu} AS unit, ${parentCols} FROM ${ps.from})
     SELECT count(*) AS rows, count(DISTINCT c.unit) AS units FROM c JOIN p USING (${using}) WHERE c.unit <> p.unit`,
  );
  return { rows: Number(r.rows[0].rows), units: Number(r.rows[0].units) };
}

async function countWithKey(session: pg.ClientBase, model: Model, child: TableModel, fk: ForeignKey) {
  if (child.config.route.kind === 'reference') {
    const r = await session.query(`SELECT count(*) AS rows FROM ${quoteTable(child.name)} AS t0 WHERE ${notNull(fk)}${partitionFilter(fk)}`);
    return { rows: Number(r.rows[0].rows), units: 0 };
  }
  const s = scopeOf(model.ctx, child.config);
  const r = await session.query(`SELECT count(*) AS rows, count(DISTINCT ${s.unit}) AS units FROM ${s.from} WHERE ${notNull(fk)}${partitionFilter(fk)}`);
  return { rows: Number(r.rows[0].rows), units: Number(r.rows[0].units) };
}

/** Blocking keys as one problem line each, naming the key, the tables and the rows. */
export function crossingProblems(keys: readonly KeyAnalysis[]): string[] {
  return keys.filter((k) => k.blocking).map((k) => {
    const on = k.partition ? `table ${k.table} (partition ${k.partition})` : `table ${k.table}`;
    return k.verdict === 'unconfigured'
      ? `${on}: foreign key ${k.key} references ${k.ref}, which is not a configured table: ${k.rows} row(s) would have no parent on their shard`
      : `${on}: foreign key ${k.key} (${k.columns.join(', ')}) → ${k.ref}: ${k.rows} row(s) in ${k.units} unit(s) reference a parent in another unit`;
  });
}
