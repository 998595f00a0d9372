import type pg from 'pg';
import { pgFailure } from '../db/pg-error.js';
import { viaChildren, type Model, type TableModel, type ViaChild } from '../tables/model.js';
import type { Row } from './decoder.js';
import { lsnText } from './lsn.js';
import { writeDirty, writePosition, type DirtyRow } from './positions.js';
import { RouteError, type Placement, type RowRouter } from './route.js';
import {
  deleteManySql,
  deleteOneSql,
  deleteRowSql,
  existsSql,
  fullRowOf,
  insertManySql,
  insertSql,
  keyOf,
  selectByColumnSql,
  selectByKeySql,
  Statements,
  updateManySql,
  updateOneSql,
  updateSql,
} from './statements.js';

/** One target shard's connection and where it stands in the stream. */
export interface ShardSession {
  readonly id: string;
  readonly client: pg.Client;
  readonly sql: Statements;
  /** may set session_replication_role = replica (no per-row triggers, as PostgreSQL's own apply worker) */
  readonly replicaRole: boolean;
  /** the source WAL position this shard has committed (end of the last source transaction it holds) */
  pos: bigint;
  /** a shard transaction is open (a batch of source transactions in flight) */
  open: boolean;
  /** statements applied, for progress */
  applied: number;
  /** data statements sent (one per batch of rows), for progress: proves the batching */
  statements: number;
}

/** Rows one shard will insert (or delete by key, or update by key) in one statement. */
interface Group {
  table: TableModel;
  /** insert: the columns; delete: the primary key; update: the columns set */
  columns: readonly string[];
  rows: (string | null | undefined)[][];
  /** update: each key (JSON) → its index in rows (a key updated again keeps only its last update) */
  keys?: Map<string, number>;
  /** update: what a row that is not on the shard needs to move in (undefined for a reference table) */
  moves?: (Move | undefined)[];
}

/** An UPDATE whose row may have to move to the shard: the source transaction it belongs to, its key and new row. */
interface Move {
  txn: bigint;
  key: string[];
  row: Row;
}

/**
 * A shard's queue: a run of INSERTs (or of DELETEs) in the source's order, one statement per table
 * and column set. Within a run only rows of different tables change order, and only on a shard
 * whose session does not fire foreign-key triggers (session_replication_role = replica); elsewhere a
 * new table ends the run. An INSERT and a DELETE never pass each other (a key deleted, then inserted).
 */
interface Pending {
  kind: 'insert' | 'delete' | 'update';
  groups: Map<string, Group>;
  last: string;
  rows: number;
}

/**
 * Rows per batched statement and shard. Measured on a loaded 2-core machine, a 200,000-row UPDATE
 * caught up at ~7,400 rows/s with 500 and ~10,900 with 2,000: the statement's fixed costs are not
 * only the round trip. What is held stays bounded by DIRTY_CHUNK.
 */
const MANY = 2_000;

/** Changes held (over all shards) before the rows recorded for follow_dirty are written in the open transactions (memory stays bounded). */
const DIRTY_CHUNK = 10_000;

interface MovedRow {
  table: string;
  row: Record<string, string | null>;
}

/**
 * Applies decoded source transactions to the shards, exactly once in effect:
 *  - consecutive source transactions are batched into one transaction per shard; `flush` writes the
 *    end position of the last complete source transaction on EVERY shard and commits, so after a
 *    crash each shard knows precisely which source transactions it holds;
 *  - a source transaction is skipped on a shard whose position is past its commit (the one batch a
 *    crash can leave committed on some shards and not on others is replayed only where missing);
 *  - an UPDATE whose row now belongs to another shard moves the row (and its `via` descendants):
 *    the giving shard deletes them and keeps a copy in its stash in the same transaction, the
 *    receiving shard inserts them, with unchanged TOASTed columns taken from the old row.
 * Batched per shard: a run of INSERTs becomes one statement per table (see Pending), as does a
 * run of DELETEs by key; everything else (UPDATEs, moves, reads of the shards) and the commit first
 * send what is queued. A failing statement stops the follower.
 */
export class Applier {
  private skip = new Set<string>();
  private txn = 0n;
  /** the source transaction's id (text), null when unknown */
  private xid: string | null = null;
  /** follow_stash's order; never reset (a deferred move may stash for an earlier source transaction) */
  private seq = 0;
  private readonly parents = new Lru<string, string>(200_000);
  private readonly children: Map<string, ViaChild[]>;
  private readonly byId: Map<string, ShardSession>;
  /** per shard: rows written in its open transaction (table + key), recorded with its commit */
  private readonly dirty = new Map<string, Map<string, DirtyRow>>();
  /** per table: whether its updates may be batched (see batchable) */
  private readonly plain = new Map<string, boolean>();
  /** per shard: the batch being built (sent before any other statement on that shard, and at flush) */
  private readonly pending = new Map<string, Pending>();
  /** the position every shard has committed */
  confirmed: bigint;
  /**
   * Sending a batch, or settling the rows it moved, failed: the changes it held are lost to the
   * open shard transactions, which must not commit (a flush refuses until rollback()).
   */
  private failed: unknown;
  /** the most changes held in memory at once (see held) since the last heldHighWater() */
  private heldHigh = 0;

  constructor(
    private readonly model: Model,
    readonly sessions: readonly ShardSession[],
    private readonly slot: string,
    private readonly router: (parentShard: (parent: TableModel, column: string, value: string) => Promise<Placement>) => RowRouter,
  ) {
    this.byId = new Map(sessions.map((s) => [s.id, s]));
    this.children = viaChildren(model);
    this.confirmed = sessions.reduce((m, s) => (s.pos < m ? s.pos : m), sessions[0]?.pos ?? 0n);
    this.rows = this.router((p, c, v) => this.parentShard(p, c, v));
  }

  private readonly rows: RowRouter;

  /**
   * A source transaction starts; shards that already committed it will not see its changes again.
   * `xid` (the source's transaction id) is recorded with each row it writes: the prover (online/prover.ts)
   * proves a row only against the source version that transaction made.
   */
  begin(commitLsn: bigint, xid?: number): void {
    this.txn = commitLsn;
    this.xid = xid === undefined ? null : String(xid);
    this.skip = new Set(this.sessions.filter((s) => s.pos > commitLsn).map((s) => s.id));
  }

  async insert(t: TableModel, row: Row): Promise<void> {
    const p = await this.rows.route(t, row);
    const columns = Object.keys(row);
    const key = identityOf(t, row);
    await this.updatesFirst(t, key, p);
    await this.each(this.targets(p), (s) => this.touch(s, t, key) && this.queue(s, 'insert', t, columns, columns.map((c) => row[c])));
    if (p.kind === 'shard') this.remember(t, row, p.shard);
  }

  async update(t: TableModel, old: Row | null, row: Row): Promise<void> {
    if (this.batchable(t, old, row)) return this.queueUpdate(t, row);
    await this.drainAll(); // an update reads row counts and may move rows between shards
    if (!t.info.primaryKey.length) return this.updateFull(t, old, row);
    const key = keyOf(t, row, old);
    const set = Object.keys(row).filter((c) => row[c] !== undefined); // 'u': unchanged TOAST, left alone
    const values = [...set.map((c) => row[c]), ...key];
    // a key-changing UPDATE: both keys are dirty (the old one must be gone, the new one right)
    const newKey = t.info.primaryKey.every((k) => typeof row[k] === 'string') ? keyOf(t, row) : key;
    const p = await this.rows.route(t, row);
    if (p.kind === 'all') {
      await this.each(this.live(), (s) => this.touch(s, t, key) && this.touch(s, t, newKey) && this.exec(s, updateSql(t, set), values));
      return;
    }
    const target = p.kind === 'shard' && !this.skip.has(p.shard) ? this.byId.get(p.shard)! : undefined;
    if (!target) {
      // Replaying after a crash: the row's new shard already committed this transaction (or its
      // parent is only on such shards). Any old copy on a shard that has not is removed.
      if (p.kind === 'unknown' && this.skip.size === 0) throw new RouteError(p.why);
      for (const s of this.live()) await this.take(s, t, key, false);
      if (p.kind === 'shard') this.remember(t, row, p.shard);
      return;
    }
    this.touch(target, t, key);
    this.touch(target, t, newKey);
    const n = await this.exec(target, updateSql(t, set), values);
    if (n === 0) await this.moveIn(target, t, key, row);
    this.remember(t, row, target.id);
  }

  async delete(t: TableModel, old: Row): Promise<void> {
    if (!t.info.primaryKey.length) return this.deleteFull(t, old);
    const key = keyOf(t, old);
    // The stream usually sends only the key of a deleted row, not its unit: every shard is asked
    // (a delete by primary key of a row a shard does not hold costs one index probe).
    const p: Placement = t.config.route.kind !== 'reference' && this.routable(t, old) ? await this.rows.route(t, old) : { kind: 'all' };
    await this.updatesFirst(t, key, p);
    await this.each(p.kind === 'shard' ? this.targets(p) : this.live(), (s) => this.touch(s, t, key) && this.queue(s, 'delete', t, t.info.primaryKey, key));
    this.forget(t, old);
  }

  /**
   * An UPDATE that can wait in a batch: its table has a primary key the update leaves alone, its
   * row's shard is known without reading any shard (not `via`), no shard is replaying, and no
   * constraint of the table but its primary key could see the batch's rows change in another order
   * than the source's (a unique or exclusion index could fail on a swap the source made row by row).
   */
  private batchable(t: TableModel, old: Row | null, row: Row): boolean {
    const pk = t.info.primaryKey;
    if (!pk.length || this.skip.size || t.config.route.kind === 'via') return false;
    if (!pk.every((k) => typeof row[k] === 'string' && (!old || old[k] === undefined || old[k] === row[k]))) return false;
    let ok = this.plain.get(t.name);
    if (ok === undefined) this.plain.set(t.name, (ok = orderFree(t)));
    return ok;
  }

  /**
   * Queues an UPDATE on its shard (on every shard for a reference table). A key already queued in
   * the same statement keeps only its last update (same columns: it writes all the earlier one
   * did); queued anywhere else, everything queued is sent first. The row is found on the shard
   * when the batch is sent; one that is not there moves in then (see settle).
   */
  private async queueUpdate(t: TableModel, row: Row): Promise<void> {
    const key = keyOf(t, row);
    const p = await this.rows.route(t, row);
    if (p.kind === 'unknown') throw new RouteError(p.why);
    const set = Object.keys(row).filter((c) => row[c] !== undefined); // 'u': unchanged TOAST, left alone
    const values = [...set.map((c) => row[c]), ...key];
    const targets = this.targets(p);
    const id = JSON.stringify(key);
    const shape = `${t.name}\0${set.join('\0')}`;
    const inPlace = (s: ShardSession) => this.pending.get(s.id)?.groups.get(shape)?.keys?.has(id) === true;
    if (!targets.every(inPlace) && this.queuedUpdate(t.name, id)) await this.drainAll();
    const move = p.kind === 'shard' ? { txn: this.txn, key, row } : undefined;
    await this.each(targets, (s) => this.touch(s, t, key) && this.queue(s, 'update', t, set, values, { id, move }));
    if (p.kind === 'shard') this.remember(t, row, p.shard);
  }

  /** Whether an update of this key waits in a batch on any shard. */
  private queuedUpdate(table: string, id: string): boolean {
    for (const p of this.pending.values()) {
      if (p.kind !== 'update') continue;
      for (const g of p.groups.values()) if (g.table.name === table && g.keys?.has(id)) return true;
    }
    return false;
  }

  /**
   * Before an INSERT or DELETE: batched updates are sent (and their moves settled) first when the
   * change could meet one of them — the same key, a `via` table (a moving parent takes its children),
   * or several shards at once (settling reads other shards: one at a time keeps it simple).
   */
  private async updatesFirst(t: TableModel, key: readonly (string | null)[], p: Placement): Promise<void> {
    if (![...this.pending.values()].some((q) => q.kind === 'update')) return;
    if (p.kind !== 'shard' || t.config.route.kind === 'via' || this.queuedUpdate(t.name, JSON.stringify(key))) await this.drainAll();
  }

  /**
   * A table without a primary key (REPLICA IDENTITY FULL: the stream sends the whole old row): the
   * UPDATE changes exactly one shard row equal to the old row in every column (any one of identical
   * rows: they are alike), on the old row's shard; a row whose unit changed is deleted there and
   * inserted on its new shard. Unchanged TOASTed values of the new row come from the old one.
   */
  private async updateFull(t: TableModel, old: Row | null, row: Row): Promise<void> {
    await this.drainAll(); // a keyless table stays on the per-row path; batched updates go first
    if (!old) throw new RouteError(`table ${t.name} has no primary key and the stream sent an update without its old row: it is not REPLICA IDENTITY FULL on the source`);
    const merged: Row = {};
    for (const c of t.columns) merged[c] = row[c] !== undefined ? row[c] : old[c];
    const was = fullRowOf(t, old);
    const now = fullRowOf(t, merged);
    const from = this.targets(await this.rows.route(t, old));
    const to = this.targets(await this.rows.route(t, merged));
    if (from.length === 1 && to.length === 1 && from[0] === to[0]) {
      const s = from[0]!;
      this.touch(s, t, was);
      this.touch(s, t, now);
      const n = await this.exec(s, updateOneSql(t, t.columns), [...now, JSON.stringify(was)]);
      if (n !== 1) throw missingRow(t, s, 'updated');
      return;
    }
    await this.each(from, async (s) => {
      this.touch(s, t, was);
      if ((await this.exec(s, deleteOneSql(t), [JSON.stringify(was)])) !== 1) throw missingRow(t, s, 'updated');
    });
    await this.each(to, (s) => this.touch(s, t, now) && this.queue(s, 'insert', t, t.columns, now));
  }

  /** A table without a primary key: exactly one shard row equal to the old row goes. */
  private async deleteFull(t: TableModel, old: Row): Promise<void> {
    await this.drainAll();
    const was = fullRowOf(t, old);
    await this.each(this.targets(await this.rows.route(t, old)), async (s) => {
      this.touch(s, t, was);
      if ((await this.exec(s, deleteOneSql(t), [JSON.stringify(was)])) !== 1) throw missingRow(t, s, 'deleted');
    });
  }

  /**
   * Commits every shard at `end` (the end of the last complete source transaction), positions
   * included. A shard already past `end` (it committed further before a crash, and is skipping the
   * replay) is left alone: writing `end` there would move its position back over changes it holds.
   */
  async flush(end: bigint, sourceTime: Date): Promise<void> {
    const before = this.confirmed;
    if (this.failed) throw this.failed;
    await this.drainAll(); // batched updates first: a row not on its shard moves, reading the others
    await Promise.all(
      this.sessions.map(async (s) => {
        await this.drain(s);
        if (s.pos >= end && !s.open) return;
        if (!s.open) await this.open(s);
        await writePosition(s.client, this.slot, lsnText(end > s.pos ? end : s.pos), sourceTime);
        await writeDirty(s.client, this.slot, [...(this.dirty.get(s.id)?.values() ?? [])]);
        this.dirty.delete(s.id);
        // stashed rows of transactions every shard has committed are no longer needed
        await s.sql.run('DELETE FROM shardctl.follow_stash WHERE slot = $1 AND lsn < $2', [this.slot, lsnText(before)]);
        await s.client.query('COMMIT');
        s.open = false;
        if (end > s.pos) s.pos = end;
      }),
    );
    this.confirmed = this.sessions.reduce((m, s) => (s.pos < m ? s.pos : m), end);
  }

  async rollback(): Promise<void> {
    await Promise.all(
      this.sessions.filter((s) => s.open).map(async (s) => {
        await s.client.query('ROLLBACK').catch(() => undefined);
        s.open = false;
      }),
    );
    this.failed = undefined;
    this.parents.clear(); // it may describe rolled-back changes
    this.dirty.clear();
    this.pending.clear();
  }

  /**
   * After each streamed change: the rows recorded for follow_dirty go to the shard in chunks, inside
   * its open transaction (they commit, or roll back, with the writes they name), so a source
   * transaction of millions of rows is held a chunk at a time, never whole; notes the high-water
   * mark of what is held (rows recorded and rows batched).
   */
  async afterChange(): Promise<void> {
    const n = this.held();
    if (n > this.heldHigh) this.heldHigh = n;
    if (n < DIRTY_CHUNK) return;
    for (const s of this.sessions) {
      const m = this.dirty.get(s.id);
      if (!m?.size) continue;
      try {
        if (!s.open) await this.open(s);
        await writeDirty(s.client, this.slot, [...m.values()]);
      } catch (e) {
        throw pgFailure(e, `shard ${s.id}`);
      }
      this.dirty.delete(s.id);
    }
  }

  /** The most changes held at once since the last call (progress reports it as heldChanges). */
  heldHighWater(): number {
    const h = this.heldHigh;
    this.heldHigh = this.held();
    return h;
  }

  private held(): number {
    let n = 0;
    for (const m of this.dirty.values()) n += m.size;
    for (const p of this.pending.values()) n += p.rows;
    return n;
  }

  /** Adds a row to the shard's batch; a batch of another table, kind or shape is sent first. */
  private async queue(
    s: ShardSession,
    kind: Pending['kind'],
    t: TableModel,
    columns: readonly string[],
    values: (string | null | undefined)[],
    update?: { id: string; move: Move | undefined },
  ): Promise<void> {
    const shape = `${t.name}\0${columns.join('\0')}`;
    // sending an update batch may queue the rows it moves in: sent too before another kind
    for (let q = this.pending.get(s.id); q && (q.kind !== kind || (!s.replicaRole && q.last !== shape)); q = this.pending.get(s.id)) await this.drain(s);
    let p = this.pending.get(s.id);
    if (!p) this.pending.set(s.id, (p = { kind, groups: new Map(), last: shape, rows: 0 }));
    let g = p.groups.get(shape);
    if (!g) p.groups.set(shape, (g = update ? { table: t, columns, rows: [], keys: new Map(), moves: [] } : { table: t, columns, rows: [] }));
    p.last = shape;
    const at = update ? g.keys!.get(update.id) : undefined;
    if (at !== undefined) {
      g.rows[at] = values; // the same key updated again: its last update wins
      g.moves![at] = update!.move;
      return;
    }
    if (update) {
      g.keys!.set(update.id, g.rows.length);
      g.moves!.push(update.move);
    }
    g.rows.push(values);
    if (++p.rows >= MANY) await this.drain(s);
  }

  /** Sends the shard's batch: one row as the plain prepared statement, more as one statement of arrays. */
  private async drain(s: ShardSession): Promise<void> {
    await this.failing(async () => {
      for (const settle of await this.send(s)) await settle();
    });
  }

  /** Runs work that sends what is queued: a failure is remembered (see failed). */
  private async failing(work: () => Promise<void>): Promise<void> {
    try {
      await work();
    } catch (e) {
      this.failed ??= e;
      throw e;
    }
  }

  /**
   * Sends the shard's batch; for an update batch, returns what settles the rows it did not find
   * (each moves in from the shard that holds it, in the order of the source).
   */
  private async send(s: ShardSession): Promise<(() => Promise<void>)[]> {
    const p = this.pending.get(s.id);
    if (!p) return [];
    this.pending.delete(s.id);
    const settles: (() => Promise<void>)[] = [];
    for (const { table: t, columns, rows, moves } of p.groups.values()) {
      if (p.kind === 'update') {
        const arrays = [...columns, ...t.info.primaryKey].map((_, i) => rows.map((r) => r[i]));
        const found = new Set((await this.run(s, updateManySql(t, columns), arrays, rows.length)).rows.map((r) => Number(r.n) - 1));
        moves!.forEach((m, i) => {
          if (m && !found.has(i)) settles.push(() => this.moveIn(s, t, m.key, m.row, m.txn));
        });
      } else if (rows.length === 1) {
        await this.exec(s, p.kind === 'insert' ? insertSql(t, columns) : deleteRowSql(t), rows[0]!);
      } else {
        const arrays = columns.map((_, i) => rows.map((r) => r[i]));
        await this.exec(s, p.kind === 'insert' ? insertManySql(t, columns) : deleteManySql(t), arrays, rows.length);
      }
    }
    return settles;
  }

  /** Sends every shard's batch at once (each has its own connection), then settles moves one at a time, until nothing is queued. */
  private async drainAll(): Promise<void> {
    await this.failing(async () => {
      while (this.pending.size) {
        const settles = await Promise.all(this.sessions.map((s) => this.send(s)));
        for (const settle of settles.flat()) await settle();
      }
    });
  }

  /** Notes a row written on `s` in its open transaction (always true, to chain before the write). */
  private touch(s: ShardSession, t: TableModel, key: readonly (string | null)[]): true {
    let m = this.dirty.get(s.id);
    if (!m) this.dirty.set(s.id, (m = new Map()));
    const k = JSON.stringify(key);
    m.set(`${t.name}\0${k}`, [t.name, k, this.xid]);
    return true;
  }

  /** The same statement on several shards: each has its own connection, so they run at once. */
  private async each(sessions: ShardSession[], fn: (s: ShardSession) => Promise<unknown>): Promise<void> {
    if (sessions.length === 1) await fn(sessions[0]!);
    else await Promise.all(sessions.map(fn));
  }

  /** Shards that have not committed the current source transaction. */
  private live(): ShardSession[] {
    return this.sessions.filter((s) => !this.skip.has(s.id));
  }

  private targets(p: Placement): ShardSession[] {
    if (p.kind === 'all') return this.live();
    if (p.kind === 'shard') return this.skip.has(p.shard) ? [] : [this.byId.get(p.shard)!];
    if (this.skip.size === 0) throw new RouteError(p.why);
    return []; // replaying: only shards that already committed this transaction hold the parent
  }

  private routable(t: TableModel, row: Row): boolean {
    const r = t.config.route;
    const has = (c: string) => row[c] !== undefined && row[c] !== null;
    if (r.kind === 'key' || r.kind === 'cell') return has(r.column);
    if (r.kind === 'latlng') return has(r.lat) && has(r.lng);
    return false;
  }

  private async open(s: ShardSession): Promise<void> {
    await s.client.query('BEGIN');
    if (s.replicaRole) await s.client.query('SET LOCAL session_replication_role = replica');
    s.open = true;
  }

  private async exec(s: ShardSession, text: string, values: unknown[], changes = 1): Promise<number> {
    // what is queued for this shard comes first (and what sending it queued: rows moved in)
    while (this.pending.has(s.id)) await this.drain(s);
    return (await this.run(s, text, values, changes)).rowCount ?? 0;
  }

  /** One statement on the shard, in its open transaction. */
  private async run(s: ShardSession, text: string, values: unknown[], changes: number): Promise<pg.QueryResult> {
    try {
      if (!s.open) await this.open(s);
      const r = await s.sql.run(text, values);
      s.applied += changes;
      s.statements++;
      return r;
    } catch (e) {
      throw pgFailure(e, `shard ${s.id}`);
    }
  }

  /** The shard holding a `via` parent: the stream's own recent changes first, else asked of the shards. */
  private async parentShard(parent: TableModel, column: string, value: string): Promise<Placement> {
    const k = cacheKey(parent.name, column, value);
    const known = this.parents.get(k);
    if (known) return { kind: 'shard', shard: known };
    await this.drainAll(); // a parent may be in a batch not yet sent
    const found = (
      await Promise.all(this.sessions.map(async (s) => ((await s.sql.run(existsSql(parent, column), [value])).rowCount ? s.id : undefined)))
    ).filter((x): x is string => x !== undefined);
    // A shard that has not committed this transaction is authoritative (it is exactly as of the
    // transaction's start); one that has may already reflect later changes.
    const shard = found.find((s) => !this.skip.has(s)) ?? found[0];
    if (shard === undefined) return { kind: 'unknown', why: `${parent.name}.${column} = ${value} is on no shard: a row of a child table without its parent` };
    this.parents.set(k, shard);
    return { kind: 'shard', shard };
  }

  private remember(t: TableModel, row: Row, shard: string): void {
    for (const c of this.children.get(t.name) ?? []) {
      const v = row[c.parentColumn];
      if (v !== undefined && v !== null) this.parents.set(cacheKey(t.name, c.parentColumn, v), shard);
    }
  }

  private forget(t: TableModel, row: Row): void {
    for (const c of this.children.get(t.name) ?? []) {
      const v = row[c.parentColumn];
      if (v !== undefined && v !== null) this.parents.delete(cacheKey(t.name, c.parentColumn, v));
      else this.parents.clear(); // cannot tell which entry: start over (lookups refill it)
    }
  }

  /** The row updated on the source is not on its new shard: bring it (and its descendants) there. */
  private async moveIn(target: ShardSession, t: TableModel, key: string[], row: Row, txn = this.txn): Promise<void> {
    let moved: MovedRow[] | undefined;
    // every other shard is asked at once which holds the row (at most one does)
    const others = this.live().filter((s) => s !== target);
    const found = await Promise.all(others.map(async (s) => (await s.sql.run(selectByKeySql(t), key)).rows[0] as Record<string, string | null> | undefined));
    const at = found.findIndex((r) => r !== undefined);
    if (at >= 0) moved = await this.take(others[at]!, t, key, true, found[at], txn);
    // a crash fell between the giving shard's commit and ours: the giver kept the rows for us
    if (!moved) for (const id of this.skip) if ((moved = await this.stashed(this.byId.get(id)!, t, key, txn))) break;
    if (!moved) throw new RouteError(`table ${t.name}: the row with key (${key.join(', ')}) updated on the source is on no shard`);
    const [root, ...rest] = moved;
    const merged: Row = { ...root!.row };
    for (const [c, v] of Object.entries(row)) if (v !== undefined) merged[c] = v;
    for (const m of [{ table: t.name, row: merged }, ...rest]) {
      const mt = this.model.table(m.table);
      const columns = Object.keys(m.row);
      this.touch(target, mt, keyOf(mt, m.row));
      await this.queue(target, 'insert', mt, columns, columns.map((c) => m.row[c]));
      this.remember(mt, m.row, target.id);
    }
  }

  /** Removes a row and its `via` descendants from a shard, children first; with `stash`, keeps them for a replay. */
  private async take(s: ShardSession, t: TableModel, key: string[], stash: boolean, known?: Record<string, string | null>, txn = this.txn): Promise<MovedRow[] | undefined> {
    const root = known ?? ((await s.sql.run(selectByKeySql(t), key)).rows[0] as Record<string, string | null> | undefined);
    if (!root) return undefined;
    const rows: MovedRow[] = [{ table: t.name, row: root }];
    let level: MovedRow[] = rows.slice();
    while (level.length) {
      const next: MovedRow[] = [];
      for (const parent of level) {
        for (const c of this.children.get(parent.table) ?? []) {
          const v = parent.row[c.parentColumn];
          if (v === null || v === undefined) continue;
          const got = (await s.sql.run(selectByColumnSql(c.table, c.column), [[v]])).rows as Record<string, string | null>[];
          for (const row of got) next.push({ table: c.table.name, row });
        }
      }
      rows.push(...next);
      level = next;
    }
    for (const m of [...rows].reverse()) {
      const mt = this.model.table(m.table);
      this.touch(s, mt, keyOf(mt, m.row));
      await this.queue(s, 'delete', mt, mt.info.primaryKey, keyOf(mt, m.row));
    }
    if (stash) {
      await this.exec(s, 'INSERT INTO shardctl.follow_stash (slot, lsn, seq, rows) VALUES ($1, $2, $3, $4::jsonb)', [
        this.slot,
        lsnText(txn),
        this.seq++,
        JSON.stringify({ table: t.name, key, rows }),
      ]);
    }
    return rows;
  }

  private async stashed(s: ShardSession, t: TableModel, key: string[], txn: bigint): Promise<MovedRow[] | undefined> {
    const r = await s.sql.run('SELECT rows FROM shardctl.follow_stash WHERE slot = $1 AND lsn = $2 ORDER BY seq', [this.slot, lsnText(txn)]);
    for (const { rows } of r.rows as { rows: { table: string; key: string[]; rows: MovedRow[] } }[]) {
      if (rows.table === t.name && rows.key.join('\0') === key.join('\0')) return rows.rows;
    }
    return undefined;
  }
}

/** What the follower records of a row it wrote (follow_dirty): its primary key, or all its values when the table has none. */
const identityOf = (t: TableModel, row: Row): (string | null)[] => (t.info.primaryKey.length ? keyOf(t, row) : fullRowOf(t, row));

/** A shard does not hold the row a streamed change of a keyless table is about: it differs from the monolith. */
const missingRow = (t: TableModel, s: ShardSession, what: string) =>
  new RouteError(`table ${t.name} (no primary key): a row ${what} on the source is not on shard ${s.id}, so that shard differs from the monolith`);

/**
 * Whether a batch may update the table's rows in any order: no unique index but the primary key's,
 * no gist or spgist index (an exclusion constraint). Otherwise its updates stay one by one.
 */
const orderFree = (t: TableModel): boolean =>
  t.info.indexes.filter((d) => d.startsWith('UNIQUE ')).length <= 1 && !t.info.indexes.some((d) => / USING (gist|spgist) /i.test(` ${d} `));

const cacheKey = (table: string, column: string, value: string) => `${table}\0${column}\0${value}`;

/** A Map that forgets its oldest entries past `max` (parent lookups are refilled from the shards). */
class Lru<K, V> extends Map<K, V> {
  constructor(private readonly max: number) {
    super();
  }
  override set(k: K, v: V): this {
    super.delete(k);
    super.set(k, v);
    if (this.size > this.max) super.delete(this.keys().next().value as K);
    return this;
  }
}
