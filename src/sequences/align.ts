import type pg from 'pg';
import type { Config } from '../config/types.js';
import { withClient, type Endpoint } from '../db/connect.js';
import { setDeadline } from '../db/deadline.js';
import { blockedError } from '../errors.js';
import { quoteIdent, quoteTable } from '../db/ident.js';
import type { TableModel } from '../tables/model.js';
import { columnSequenceSql } from '../tables/column-sequence.js';
import { shardEndpoint } from '../db/endpoints.js';

/**
 * Ids never collide across shards. COPY does not advance serial/identity sequences, and once the
 * shards take inserts each hands out ids on its own. So every sequence of a sharded table is
 * interleaved: on every shard it steps by ID_STRIDE, and on the shard at position p of the topology
 * (0-based; shards are only ever appended) it yields only ids ≡ p + 1 (mod ID_STRIDE), starting past
 * every id the monolith or any shard has handed out. Two shards can never produce the same id, rows
 * that move between shards keep ids no other shard will produce, and room is left for ID_STRIDE
 * shards. Reference tables (the same rows everywhere) only start past the fleet's highest id.
 */
export const ID_STRIDE = 1024;

interface SeqColumn {
  readonly table: string;
  readonly column: string;
  readonly stride: number;
}

function seqColumns(tables: readonly TableModel[]): SeqColumn[] {
  return tables.flatMap((t) =>
    t.info.columns.filter((c) => c.sequence).map((c) => ({ table: t.name, column: c.name, stride: t.config.route.kind === 'reference' ? 1 : ID_STRIDE })),
  );
}

const key = (c: SeqColumn) => `${c.table}.${c.column}`;

/** The column's sequence on this server: owned by it, or called by its DEFAULT (column-sequence.ts). */
async function sequenceOf(c: pg.ClientBase, col: SeqColumn): Promise<string | null> {
  return (await c.query(`SELECT ${columnSequenceSql('$1', '$2')} AS s`, [quoteTable(col.table), col.column])).rows[0].s;
}

/** The residue of a shard's ids: its position in the topology, plus one. */
export function shardResidue(config: Config, shard: string): number {
  const p = config.shards.findIndex((s) => s.id === shard);
  if (p < 0) throw new Error(`internal: shard ${shard} not in the topology`);
  if (p >= ID_STRIDE) throw blockedError(`shard ${shard}: ids are interleaved for at most ${ID_STRIDE} shards`);
  return (p + 1) % ID_STRIDE;
}

/**
 * Per column, the highest id the server's sequence handed out, and (with `tables`) the highest its
 * table holds (0 when none). max(col) is one index probe where an index leads with the column
 * (indexedMax); elsewhere it scans the table: callers that do this inside a fence warn first
 * (scannedSequenceColumns).
 */
async function highWater(c: pg.ClientBase, cols: readonly SeqColumn[], tables = true): Promise<{ seq: Map<string, bigint>; table: Map<string, bigint> }> {
  const seq = new Map<string, bigint>();
  const table = new Map<string, bigint>();
  for (const col of cols) {
    const name = await sequenceOf(c, col);
    if (name) {
      const r = await c.query(`SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END::text AS v FROM ${name}`);
      seq.set(key(col), BigInt(r.rows[0].v));
    }
    if (!tables) continue;
    const m = await c.query(`SELECT max(${quoteIdent(col.column)})::text AS m FROM ${quoteTable(col.table)}`);
    table.set(key(col), m.rows[0].m === null ? 0n : BigInt(m.rows[0].m));
  }
  return { seq, table };
}

/** Whether max(col) is an index probe on this server: a valid, non-partial btree index (partitioned: on every partition) leads with the column. */
async function indexedMax(c: pg.ClientBase, col: SeqColumn): Promise<boolean> {
  const r = await c.query(
    `SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                    WHERE i.indrelid = $1::regclass AND a.attname = $2 AND am.amname = 'btree' AND i.indisvalid AND i.indpred IS NULL) AS ok`,
    [quoteTable(col.table), col.column],
  );
  return r.rows[0].ok;
}

/**
 * `table.column` of every sequence column of `tables` whose highest id (the interleaving rule needs
 * it) takes a scan of the whole table on this server, for want of an index leading with the column:
 * cutover and rollback say so before they fence, since that scan happens inside their fence.
 */
export async function scannedSequenceColumns(c: pg.ClientBase, tables: readonly TableModel[]): Promise<string[]> {
  const out: string[] = [];
  for (const col of seqColumns(tables)) if (!(await indexedMax(c, col))) out.push(key(col));
  return out;
}

/** The warning for scannedSequenceColumns' answer, or undefined when there is nothing to say. */
export function scanWarning(columns: readonly string[]): string | undefined {
  if (!columns.length) return undefined;
  return `max(col) scans the table inside the fence for ${columns.join(', ')}: add an index leading with ${columns.length > 1 ? 'each column' : 'the column'} to keep the outage short`;
}

/** Opens a session whose statements end by `deadline` (epoch ms; a statement past it is cancelled, SQLSTATE 57014). */
async function withDeadline<T>(ep: Endpoint, deadline: number | undefined, fn: (c: pg.ClientBase) => Promise<T>): Promise<T> {
  return withClient(ep, async (c) => {
    if (deadline !== undefined) await setDeadline(c, deadline);
    return fn(c);
  });
}

/**
 * Sets every sequence of `tables` on every shard of `config` to the interleaving rule, each past
 * the highest id any shard holds, its own sequence's last value and the monolith's (`source`; without
 * one, after cutover, past every shard's sequence too). Never moves a sequence backwards; with a
 * source, a rerun without new writes changes nothing. `only` limits the shards set (not the ones
 * read). `shardsProven` (cutover): the shards hold only monolith rows, their tables are not read.
 * Returns the sequences set per shard.
 */
export async function alignFleetSequences(
  config: Config,
  tables: readonly TableModel[],
  source?: Endpoint,
  only?: readonly string[],
  opts: { shardsProven?: boolean; deadline?: number } = {},
): Promise<Map<string, number>> {
  const cols = seqColumns(tables);
  const set = config.shards.filter((x) => !only || only.includes(x.id));
  // no column takes its default from a sequence: nothing to read or set (a session per server spared)
  if (!cols.length) return new Map(set.map((x) => [x.id, 0]));
  // cutover, inside its fence: every shard row was just proven to be a monolith row (changed.ts and the
  // copy), so no shard table holds an id above the monolith's; each shard's own sequence is read by
  // alignShard. Only the monolith is read: its sequences and its tables' highest ids (the rule stays;
  // an index probe each where an index leads with the column, else a scan cutover warned about).
  const none = { seq: new Map<string, bigint>(), table: new Map<string, bigint>() };
  // the shards are read side by side, then set side by side: each shard's setting depends only on
  // what all of them and the monolith held before any is set
  const seen = new Map<string, Awaited<ReturnType<typeof highWater>>>(
    await Promise.all(config.shards.map(async (s) => [s.id, source && opts.shardsProven ? none : await withDeadline(shardEndpoint(config, s.id), opts.deadline, (c) => highWater(c, cols))] as const)),
  );
  const shards = [...seen.values()];
  // ids that moved away from a shard are held by another: every table's maximum counts
  const base = source
    ? await withDeadline(source, opts.deadline, (c) => highWater(c, cols)).then((h) => maxOf([h.seq, h.table, ...shards.map((x) => x.table)]))
    : maxOf(shards.flatMap((x) => [x.seq, x.table]));
  return new Map(
    await Promise.all(set.map(async (s) => {
      const residue = shardResidue(config, s.id);
      const floor = maxOf([base, seen.get(s.id)!.seq]);
      return [s.id, await withDeadline(shardEndpoint(config, s.id), opts.deadline, (c) => alignShard(c, cols, residue, floor))] as const;
    })),
  );
}

function maxOf(maps: readonly Map<string, bigint>[]): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const m of maps) for (const [k, v] of m) if (v > (out.get(k) ?? 0n)) out.set(k, v);
  return out;
}

async function alignShard(c: pg.ClientBase, cols: readonly SeqColumn[], residue: number, floor: ReadonlyMap<string, bigint>): Promise<number> {
  let n = 0;
  for (const col of cols) {
    const seq = await sequenceOf(c, col);
    if (!seq) continue;
    const stride = BigInt(col.stride);
    // a sequence several columns' defaults share was maybe set a moment ago for another: never back
    const handed = BigInt((await c.query(`SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END::text AS v FROM ${seq}`)).rows[0].v);
    const low = floor.get(key(col)) ?? 0n;
    const base = (handed > low ? handed : low) + 1n;
    const next = col.stride === 1 ? base : base + ((((BigInt(residue) - base) % stride) + stride) % stride);
    const cur = await c.query(`SELECT increment_by::text AS inc FROM pg_sequences WHERE format('%I.%I', schemaname, sequencename)::regclass = $1::regclass`, [seq]);
    if (cur.rows[0]?.inc !== String(stride)) await c.query(`ALTER SEQUENCE ${seq} INCREMENT BY ${stride}`);
    await c.query(`SELECT setval($1::regclass, $2, false)`, [seq, String(next)]);
    n++;
  }
  return n;
}

/**
 * After a rollback the monolith takes inserts again: each of its sequences of `tables` is set (step 1,
 * as the monolith always had) past every id any shard's sequence handed out and every id the
 * monolith's tables now hold, so the rows written on the shards during the window never collide
 * with new ones. Never moves a sequence backwards. Returns the sequences set. `shardsProven`
 * (rollback, inside its fence): every shard row was just proven to be a monolith row, so the shards'
 * tables are not read, only their sequences. `deadline` bounds every statement (57014 past it).
 */
export async function alignSourceSequences(config: Config, tables: readonly TableModel[], source: Endpoint, opts: { shardsProven?: boolean; deadline?: number } = {}): Promise<number> {
  const cols = seqColumns(tables).map((c) => ({ ...c, stride: 1 }));
  // the shards side by side, as alignFleetSequences reads them (rollback does this inside its fence)
  const seen = await Promise.all(config.shards.map((s) => withDeadline(shardEndpoint(config, s.id), opts.deadline, (c) => highWater(c, cols, !opts.shardsProven))));
  return withDeadline(source, opts.deadline, async (c) => {
    const own = await highWater(c, cols);
    return alignShard(c, cols, 0, maxOf([own.seq, own.table, ...seen.flatMap((x) => [x.seq, x.table])]));
  });
}
