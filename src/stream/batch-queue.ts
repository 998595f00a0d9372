import type pg from 'pg';
import type { TableModel } from '../tables/model.js';
import type { Lsn } from '../db/lsn.js';
import type { Row } from './decoder.js';
import type { ShardSession } from './shard-session.js';
import { deleteManySql, deleteRowSql, insertManySql, insertSql, updateManySql } from './statements.js';

export type BatchKind = 'insert' | 'delete' | 'update';

/** An UPDATE whose row may have to move to the shard: the source transaction it belongs to, its key and new row. */
export interface Move {
  txn: Lsn;
  key: string[];
  row: Row;
}

/** A batched UPDATE that found no row on its shard: the row moves in (see Applier.moveIn). */
export interface Unfound {
  table: TableModel;
  move: Move;
}

/** Rows one shard will insert (or delete by key, or update by key) in one statement. */
interface Group {
  kind: BatchKind;
  table: TableModel;
  /** insert: the columns; delete: the primary key; update: the columns set */
  columns: readonly string[];
  rows: (string | null | undefined)[][];
  /** update: each key (JSON) → its index in rows (a key updated again keeps only its last update) */
  keys?: Map<string, number>;
  /** update: what a row that is not on the shard needs to move in (undefined for a reference table) */
  moves?: (Move | undefined)[];
}

/**
 * A shard's batch: its changes in the source's order, one statement per kind, table and column set.
 * Only changes of different tables change order, and only on a shard whose session does not fire
 * foreign-key triggers (session_replication_role = replica: there every constraint is one table's
 * own, so changes of different tables commute); elsewhere the batch is a run of one kind, table and
 * column set. Within one table a batch holds one kind: an INSERT and a DELETE never pass each other
 * (a key deleted, then inserted), nor an UPDATE either.
 */
interface Pending {
  groups: Map<string, Group>;
  /** the kind and shape of the last row added */
  last: string;
  rows: number;
}

/**
 * Rows per batched statement and shard. Measured on a loaded 2-core machine, a 200,000-row UPDATE
 * caught up at ~7,400 rows/s with 500 and ~10,900 with 2,000: the statement's fixed costs are not
 * only the round trip.
 */
export const MANY = 2_000;

/** One statement on the shard in its open transaction, counted as `changes` changes. */
export type RunOnShard = (s: ShardSession, text: string, values: unknown[], changes: number) => Promise<pg.QueryResult>;

const shapeOf = (kind: BatchKind, t: TableModel, columns: readonly string[]) => `${kind}\0${t.name}\0${columns.join('\0')}`;

/**
 * The batching queue: per shard, the batch being built, sent as one statement per kind, table and
 * column set (one row as the plain prepared statement, more as one statement of arrays), and the
 * batch being sent (at most one per shard: the Applier builds the next one meanwhile). It only holds
 * and sends rows; what must be sent before what is the Applier's to decide.
 */
export class BatchQueues {
  private readonly pending = new Map<string, Pending>();
  /** per shard, the batch on its way (what it holds still counts as queued: see queuedUpdate) */
  private readonly sending = new Map<string, Pending>();

  constructor(private readonly run: RunOnShard) {}

  /** Whether the shard has a batch waiting. */
  has(shard: string): boolean {
    return this.pending.has(shard);
  }

  get size(): number {
    return this.pending.size;
  }

  /** Rows waiting or on their way, over all shards. */
  get rows(): number {
    let n = 0;
    for (const p of [...this.pending.values(), ...this.sending.values()]) n += p.rows;
    return n;
  }

  /** Whether any shard holds (or is sending) UPDATEs. */
  hasUpdates(): boolean {
    return this.batches().some((g) => g.kind === 'update');
  }

  /** Whether an update of this key waits in a batch, or is on its way, on any shard. */
  queuedUpdate(table: string, id: string): boolean {
    return this.batches().some((g) => g.kind === 'update' && g.table.name === table && g.keys!.has(id));
  }

  /**
   * Whether an update of this key, on these shards with these columns set, could apply out of the
   * source's order among the updates of the key queued before it: one waits or is on its way on
   * another shard, or waits on one of these with other columns set (another statement). One with
   * the same columns waiting there is replaced in place (it writes all the earlier one did); one on
   * its way there is applied first.
   */
  updateConflicts(shards: readonly string[], t: TableModel, set: readonly string[], id: string): boolean {
    const shape = shapeOf('update', t, set);
    for (const [queue, own] of [[this.pending, true], [this.sending, false]] as const) {
      for (const [shard, p] of queue) {
        const here = shards.includes(shard);
        for (const [k, g] of p.groups) {
          if (g.kind !== 'update' || g.table.name !== t.name || !g.keys!.has(id)) continue;
          if (!here || (own && k !== shape)) return true;
        }
      }
    }
    return false;
  }

  /** Whether the shard's batch must be sent before a row of this kind, table and columns joins it. */
  blocks(s: ShardSession, kind: BatchKind, t: TableModel, columns: readonly string[]): boolean {
    const q = this.pending.get(s.id);
    if (!q) return false;
    if (!s.replicaRole) return q.last !== shapeOf(kind, t, columns);
    for (const g of q.groups.values()) if (g.table.name === t.name && g.kind !== kind) return true;
    return false;
  }

  private batches(): Group[] {
    return [...this.pending.values(), ...this.sending.values()].flatMap((p) => [...p.groups.values()]);
  }

  /**
   * Adds a row to the shard's batch (call only when `blocks` is false); an update of a key already
   * there replaces it (same columns: it writes all the earlier one did). Returns whether the batch
   * is full and must be sent.
   */
  add(s: ShardSession, kind: BatchKind, t: TableModel, columns: readonly string[], values: (string | null | undefined)[], update?: { id: string; move: Move | undefined }): boolean {
    const shape = shapeOf(kind, t, columns);
    let p = this.pending.get(s.id);
    if (!p) this.pending.set(s.id, (p = { groups: new Map(), last: shape, rows: 0 }));
    let g = p.groups.get(shape);
    if (!g) p.groups.set(shape, (g = update ? { kind, table: t, columns, rows: [], keys: new Map(), moves: [] } : { kind, table: t, columns, rows: [] }));
    p.last = shape;
    const at = update ? g.keys!.get(update.id) : undefined;
    if (at !== undefined) {
      g.rows[at] = values; // the same key updated again: its last update wins
      g.moves![at] = update!.move;
      return false;
    }
    if (update) {
      g.keys!.set(update.id, g.rows.length);
      g.moves!.push(update.move);
    }
    g.rows.push(values);
    return ++p.rows >= MANY;
  }

  /**
   * Sends the shard's batch (call only when none is on its way there); returns the rows its updates
   * did not find, in the source's order.
   */
  async send(s: ShardSession): Promise<Unfound[]> {
    const p = this.pending.get(s.id);
    if (!p) return [];
    this.pending.delete(s.id);
    this.sending.set(s.id, p);
    try {
      return await this.sendGroups(s, p);
    } finally {
      this.sending.delete(s.id);
    }
  }

  private async sendGroups(s: ShardSession, p: Pending): Promise<Unfound[]> {
    const unfound: Unfound[] = [];
    for (const { kind, table: t, columns, rows, moves } of p.groups.values()) {
      if (kind === 'update') {
        const arrays = [...columns, ...t.info.primaryKey].map((_, i) => rows.map((r) => r[i]));
        const found = new Set((await this.run(s, updateManySql(t, columns), arrays, rows.length)).rows.map((r) => Number(r.n) - 1));
        moves!.forEach((m, i) => {
          if (m && !found.has(i)) unfound.push({ table: t, move: m });
        });
      } else if (rows.length === 1) {
        await this.run(s, kind === 'insert' ? insertSql(t, columns) : deleteRowSql(t), rows[0]!, 1);
      } else {
        const arrays = columns.map((_, i) => rows.map((r) => r[i]));
        await this.run(s, kind === 'insert' ? insertManySql(t, columns) : deleteManySql(t), arrays, rows.length);
      }
    }
    return unfound;
  }

  /** Forgets what waits (the shard transactions roll back; nothing may be on its way). */
  clear(): void {
    this.pending.clear();
  }
}
