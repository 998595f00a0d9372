import type pg from 'pg';
import { topologyRouter } from '../routing/router.js';
import type { Model, TableModel } from '../tables/model.js';
import { readDirty } from '../stream/positions.js';
import { inKeyChunks, readRecordedRows, rootRoute } from './recorded.js';
import { checkFullRows } from './keyless.js';
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
 * with the monolith's content. Read in chunks of keys (recorded.ts), each chunk by one
 * statement per server (one snapshot each), the shards before the monolith.
 */
export async function compareRows(
  model: Model,
  router: RowRouter,
  t: TableModel,
  keys: readonly string[][],
  source: pg.ClientBase,
  shards: ReadonlyMap<string, pg.ClientBase>,
): Promise<Map<string, ComparedRow>> {
  const out = new Map<string, ComparedRow>();
  await inKeyChunks(keys, async (chunk) => {
    const here = new Map<string, Map<string, string>>(); // key → shard → row hash
    await Promise.all(
      [...shards].map(async ([id, c]) => {
        for (const x of (await readRecordedRows(model, t, c, chunk, false)).values()) {
          const m = here.get(x.key) ?? new Map<string, string>();
          m.set(id, x.hash);
          here.set(x.key, m);
        }
      }),
    );
    const src = await sourceRows(model, router, t, source, chunk);
    for (const k of new Set([...here.keys(), ...src.keys()])) out.set(k, compareOne(t, [...shards.keys()], k, src.get(k), here.get(k) ?? new Map()));
  });
  return out;
}

/** One row: what the monolith holds (`want`, nothing: deleted there) against each shard's hash of it. */
function compareOne(t: TableModel, shardIds: readonly string[], k: string, want: SourceRow | undefined, got: ReadonlyMap<string, string>): ComparedRow {
  const problems: string[] = [];
  const at = `table ${t.name} key ${k}`;
  if (!want) {
    if (got.size) problems.push(`${at}: deleted on the monolith, still on shard ${[...got.keys()].join(', ')}`);
    return { want, problems };
  }
  const homes = t.config.route.kind === 'reference' ? [...shardIds] : want.shard ? [want.shard] : [];
  for (const h of homes) {
    if (!got.has(h)) problems.push(`${at}: on the monolith, missing on shard ${h}`);
    else if (got.get(h) !== want.hash) problems.push(`${at}: differs on shard ${h}`);
  }
  for (const s of got.keys()) {
    if (!homes.includes(s)) problems.push(`${at}: on shard ${s}, not its shard${homes.length ? ` (${homes.join(', ')})` : ' (the monolith has no parent for it)'}`);
  }
  return { want, problems };
}

export interface SourceRow {
  hash: string;
  /** the unit and its shard (sharded tables whose chain reaches a root row on the monolith) */
  unit?: string;
  shard?: string;
}

/** The monolith's current rows among `keys` (one statement): content hash and, for sharded tables, unit and shard. */
async function sourceRows(model: Model, router: RowRouter, t: TableModel, source: pg.ClientBase, keys: readonly string[][]): Promise<Map<string, SourceRow>> {
  const { root, columns } = rootRoute(model, t);
  const out = new Map<string, SourceRow>();
  for (const x of (await readRecordedRows(model, t, source, keys, true)).values()) {
    const row: SourceRow = { hash: x.hash };
    if (columns.length && x.root.every((v) => v !== null)) {
      const rootRow: Row = Object.fromEntries(columns.map((c, i) => [c, x.root[i] as string]));
      const p = await router.route(root, rootRow);
      if (p.kind === 'shard') Object.assign(row, { unit: p.unit, shard: p.shard });
    }
    out.set(x.key, row);
  }
  return out;
}
