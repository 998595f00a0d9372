import type pg from 'pg';
import { quoteIdent, quoteTable } from '../db/ident.js';
import { topologyRouter } from '../routing/router.js';
import { rowHashSql } from '../tables/row-hash.js';
import { columnType, type Model, type TableModel } from '../tables/model.js';
import { qualifiedName, routeChain } from '../tables/scope.js';
import { readDirty } from '../stream/positions.js';
import { checkFullRows } from './changed-full.js';
import { rowRouter, type RowRouter } from '../stream/route.js';
import type { Row } from '../stream/decoder.js';

/**
 * Cutover's proof, done inside the fence with source and shards quiet: every row recorded on a
 * shard (`follow_dirty`: written by the follower since the copy, in the transaction that wrote it,
 * and not yet proven by the prover while following, prover.ts; or written there by someone else,
 * stream/foreign-writes.ts) is compared, by primary key, between the monolith and every shard:
 *  - a sharded row the monolith holds is on exactly the shard of its unit (catalog placement, else
 *    its route; `via` rows through their parent chain on the monolith) with the same content
 *    (the checksum's md5 of the row text), and on no other shard;
 *  - a reference row the monolith holds is on every shard, identical;
 *  - a row the monolith no longer holds is on no shard.
 * Every other row was proven equal and in place by the copy (at the slot's snapshot) and has been
 * written by neither side since: the monolith's changes all reach the stream, and the follower is
 * the only writer of the shards (see README). The work is one indexed lookup per changed row.
 */
export interface ChangedRows {
  /** changed rows compared */
  rows: number;
  problems: string[];
  /** units of the monolith's changed root rows that the catalog has not placed: unit → its shard and rows (every row of a unit born while following is a changed row) */
  newUnits: Map<string, { shard: string; rows: number }>;
}

export async function checkChangedRows(
  model: Model,
  slot: string,
  source: pg.ClientBase,
  shards: ReadonlyMap<string, pg.ClientBase>,
  placements: ReadonlyMap<string, string>,
): Promise<ChangedRows> {
  const records: RecordedRows = new Map();
  for (const c of shards.values()) addRecorded(records, await readDirty(c, slot));
  return checkRecordedRows(model, records, source, shards, placements);
}

/** Recorded rows: table → the key's JSON text → the key (or every value of a keyless row); one entry per row. */
export type RecordedRows = Map<string, Map<string, string[]>>;

/** Adds a record read by readDirty to `into` (a row recorded in several places counts once). */
export function addRecorded(into: RecordedRows, read: ReadonlyMap<string, string[][]>): void {
  for (const [table, keys] of read) {
    const m = into.get(table) ?? new Map<string, string[]>();
    for (const k of keys) m.set(JSON.stringify(k), k);
    into.set(table, m);
  }
}

/**
 * Compares the recorded rows between the monolith and the shards (see above), whichever side
 * recorded them: cutover reads the shards' record of the forward stream, rollback the monolith's
 * record of the reverse streams (rollback/changed-back.ts). Either way the monolith's row is what
 * each shard must hold, and a difference in either direction is a problem.
 */
export async function checkRecordedRows(
  model: Model,
  dirty: RecordedRows,
  source: pg.ClientBase,
  shards: ReadonlyMap<string, pg.ClientBase>,
  placements: ReadonlyMap<string, string>,
): Promise<ChangedRows> {
  // only root tables are routed here (a via row's unit comes from its chain's root row)
  const router = rowRouter(model, topologyRouter(model.config), async () => ({ kind: 'unknown', why: 'not asked' }), (u) => placements.get(u));
  const out: ChangedRows = { rows: 0, problems: [], newUnits: new Map() };
  const problem = (s: string) => void (out.problems.length < 50 && out.problems.push(s));
  for (const [name, byKey] of dirty) {
    const t = model.tables.find((x) => x.name === name);
    if (!t) continue; // a table no longer configured is not cut over
    const keys = [...byKey.values()];
    out.rows += keys.length;
    if (!t.info.primaryKey.length) {
      await checkFullRows(t, keys, router, source, shards, problem, (unit, shard, rows) => {
        if (placements.has(unit)) return;
        const n = out.newUnits.get(unit) ?? { shard, rows: 0 };
        n.rows += rows;
        out.newUnits.set(unit, n);
      });
      continue;
    }
    for (const c of (await compareRows(model, router, t, keys, source, shards)).values()) {
      for (const p of c.problems) problem(p);
      const want = c.want;
      if (want?.unit !== undefined && want.shard && t.config.route.kind !== 'via' && !placements.has(want.unit)) {
        const n = out.newUnits.get(want.unit) ?? { shard: want.shard, rows: 0 };
        n.rows++;
        out.newUnits.set(want.unit, n);
      }
    }
  }
  return out;
}

/** A row found on the monolith or on a shard: what the monolith holds (nothing: deleted there) and what differs. */
export interface ComparedRow {
  want?: SourceRow;
  problems: string[];
}

/**
 * Compares the rows of `t` (a keyed table) with primary key among `keys` between the monolith and
 * every shard: each row found on either side, by its key's text as PostgreSQL prints it
 * (`(k1, k2)`); a key on neither side has no entry. Empty problems: the row is where it belongs
 * with the monolith's content. Each side is read by one statement (one snapshot per server).
 */
export async function compareRows(
  model: Model,
  router: RowRouter,
  t: TableModel,
  keys: readonly string[][],
  source: pg.ClientBase,
  shards: ReadonlyMap<string, pg.ClientBase>,
): Promise<Map<string, ComparedRow>> {
  const filter = keyFilter(t, keys);
  const here = new Map<string, Map<string, string>>(); // key → shard → row hash
  await Promise.all(
    [...shards].map(async ([id, c]) => {
      const r = await c.query(`SELECT ${keyColumns(t)}, ${rowHashSql(t.columns)}::text AS h FROM ${quoteTable(t.name)} AS t0 WHERE ${filter.sql}`, filter.values);
      for (const x of r.rows) {
        const k = keyText(t, x);
        const m = here.get(k) ?? new Map<string, string>();
        m.set(id, x.h);
        here.set(k, m);
      }
    }),
  );
  const src = await sourceRows(model, router, t, source, filter);
  const out = new Map<string, ComparedRow>();
  for (const k of new Set([...here.keys(), ...src.keys()])) {
    const want = src.get(k);
    const got = here.get(k) ?? new Map<string, string>();
    const problems: string[] = [];
    out.set(k, { want, problems });
    const at = `table ${t.name} key ${k}`;
    if (!want) {
      if (got.size) problems.push(`${at}: deleted on the monolith, still on shard ${[...got.keys()].join(', ')}`);
      continue;
    }
    const homes = t.config.route.kind === 'reference' ? [...shards.keys()] : want.shard ? [want.shard] : [];
    for (const h of homes) {
      if (!got.has(h)) problems.push(`${at}: on the monolith, missing on shard ${h}`);
      else if (got.get(h) !== want.hash) problems.push(`${at}: differs on shard ${h}`);
    }
    for (const s of got.keys()) {
      if (!homes.includes(s)) problems.push(`${at}: on shard ${s}, not its shard${homes.length ? ` (${homes.join(', ')})` : ' (the monolith has no parent for it)'}`);
    }
  }
  return out;
}

export interface SourceRow {
  hash: string;
  /** the source transaction that wrote this version of the row (xmin) */
  xmin: string;
  /** the unit and its shard (sharded tables whose chain reaches a root row on the monolith) */
  unit?: string;
  shard?: string;
}

/** The monolith's current rows among `keys`: content hash and, for sharded tables, unit and shard. */
async function sourceRows(model: Model, router: RowRouter, t: TableModel, source: pg.ClientBase, filter: KeyFilter): Promise<Map<string, SourceRow>> {
  const chain = routeChain(model.config, t.config);
  const joins = chain.slice(1).map((p, i) => {
    const child = chain[i]!;
    if (child.route.kind !== 'via') throw new Error('internal: broken via chain');
    return `LEFT JOIN ${quoteTable(qualifiedName(p))} AS t${i + 1} ON t${i + 1}.${quoteIdent(child.route.parentColumn)} = t${i}.${quoteIdent(child.route.column)}`;
  });
  const root = chain[chain.length - 1]!;
  const rootModel = model.table(qualifiedName(root));
  const r = root.route;
  const routeCols = r.kind === 'key' || r.kind === 'cell' ? [r.column] : r.kind === 'latlng' ? [r.lat, r.lng] : [];
  const alias = `t${chain.length - 1}`;
  const extra = routeCols.map((c, i) => `, ${alias}.${quoteIdent(c)}::text AS r${i}`).join('');
  const res = await source.query(
    `SELECT ${keyColumns(t)}, ${rowHashSql(t.columns)}::text AS h, t0.xmin::text AS xmin${extra} FROM ${quoteTable(t.name)} AS t0 ${joins.join(' ')} WHERE ${filter.sql}`,
    filter.values,
  );
  const out = new Map<string, SourceRow>();
  for (const x of res.rows) {
    const row: SourceRow = { hash: x.h, xmin: x.xmin };
    if (routeCols.length && routeCols.every((_, i) => x[`r${i}`] !== null)) {
      const rootRow: Row = Object.fromEntries(routeCols.map((c, i) => [c, x[`r${i}`] as string]));
      const p = await router.route(rootModel, rootRow);
      if (p.kind === 'shard') Object.assign(row, { unit: p.unit, shard: p.shard });
    }
    out.set(keyText(t, x), row);
  }
  return out;
}

interface KeyFilter {
  sql: string;
  values: string[][];
}

/** `t0`'s primary key among `keys` (text values cast to the key columns' types: the index is used). */
export function keyFilter(t: TableModel, keys: readonly string[][]): KeyFilter {
  const pk = t.info.primaryKey;
  const cols = pk.map((k) => `t0.${quoteIdent(k)}`).join(', ');
  const arrays = pk.map((k, i) => `$${i + 1}::text[]::${columnType(t.info, k)}[]`).join(', ');
  return { sql: `(${cols}) IN (SELECT * FROM unnest(${arrays}))`, values: pk.map((_, i) => keys.map((k) => k[i]!)) };
}

export const keyColumns = (t: TableModel) => t.info.primaryKey.map((k, i) => `t0.${quoteIdent(k)}::text AS k${i}`).join(', ');
export const keyText = (t: TableModel, x: Record<string, string>) => `(${t.info.primaryKey.map((_, i) => x[`k${i}`]).join(', ')})`;
