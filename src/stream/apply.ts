import { pgFailure } from '../db/pg-error.js';
import { viaChildren, type Model, type TableModel, type ViaChild } from '../tables/model.js';
import { BatchQueues, type BatchKind, type Move, type Unfound } from './batch-queue.js';
import type { Row } from './decoder.js';
import { DirtyRows } from './dirty.js';
import { ZERO_LSN, type Lsn } from '../db/lsn.js';
import { findParentShard, ParentCache } from './parents.js';
import { writeDirty, writePosition } from './positions.js';
import { RouteError, type Placement, type RowRouter } from './route.js';
import { openShardTransaction, runOnShard, type ShardSession } from './shard-session.js';
import { pruneStash, STASH_SQL, stashedRows, stashValues, withDescendants, type MovedRow } from './stash.js';
import { deleteOneSql, fullRowOf, keyOf, selectByKeySql, setColumns, updateByKey, updateOneSql } from './statements.js';

export type { ShardSession } from './shard-session.js';

/** Changes held (over all shards) before the rows recorded for follow_dirty are written in the open transactions (memory stays bounded). */
const DIRTY_CHUNK = 10_000;

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
 * Batched per shard (batch-queue.ts): a run of INSERTs becomes one statement per table, as does a
 * run of DELETEs by key or of UPDATEs that keep their key; everything else (moves, reads of the
 * shards, keyless tables) and the commit first send what is queued. A failing statement stops the
 * follower. Its helpers, one job each: the batching queue, the parent cache (routing by parent), the
 * stash for moved rows, the record of dirty rows.
 */
export class Applier {
  private skip = new Set<string>();
  private txn = ZERO_LSN;
  /** the source transaction's id (text), null when unknown */
  private xid: string | null = null;
  /** follow_stash's order; never reset (a deferred move may stash for an earlier source transaction) */
  private seq = 0;
  private readonly children: Map<string, ViaChild[]>;
  private readonly parents: ParentCache;
  private readonly byId: Map<string, ShardSession>;
  /** per shard: rows written in its open transaction (table + key), recorded with its commit */
  private readonly dirty = new DirtyRows();
  /** per table: whether its updates may be batched (see batchable) */
  private readonly plain = new Map<string, boolean>();
  /** per shard: the batch being built (sent before any other statement on that shard, and at flush) */
  private readonly queues = new BatchQueues(runOnShard);
  /**
   * per shard: the batch on its way, sent while the stream goes on (pipelined: the next batch is
   * decoded and built meanwhile, and the shards apply theirs at once); it resolves to the rows its
   * updates did not find. Anything else that uses the shard's connection waits for it first.
   */
  private readonly inflight = new Map<string, Promise<Unfound[]>>();
  /** rows batched updates did not find, in the order they came back: moved in by drainAll */
  private readonly unfound: { s: ShardSession; u: Unfound }[] = [];
  /** > 0 while rows move between shards: batches are then sent and awaited in turn, never left on their way */
  private moving = 0;
  /** batches sent while the stream went on (see inflight), for tests and progress */
  pipelined = 0;
  /** the position every shard has committed */
  confirmed: Lsn;
  /**
   * Sending a batch, or settling the rows it moved, failed: the changes it held are lost to the
   * open shard transactions, which must not commit (a flush refuses until rollback()).
   */
  private failed: unknown;
  /** the most changes held in memory at once (see held) since the last heldHighWater() */
  private heldHigh = 0;
  private readonly rows: RowRouter;

  constructor(
    private readonly model: Model,
    readonly sessions: readonly ShardSession[],
    private readonly slot: string,
    router: (parentShard: (parent: TableModel, column: string, value: string) => Promise<Placement>) => RowRouter,
  ) {
    this.byId = new Map(sessions.map((s) => [s.id, s]));
    this.children = viaChildren(model);
    this.parents = new ParentCache(this.children);
    this.confirmed = sessions.reduce((m, s) => (s.pos < m ? s.pos : m), sessions[0]?.pos ?? ZERO_LSN);
    this.rows = router((p, c, v) => this.parentShard(p, c, v));
  }

  /**
   * A source transaction starts; shards that already committed it will not see its changes again.
   * `xid` (the source's transaction id) is recorded with each row it writes: it marks the record as
   * the follower's, which the prover (online/prover.ts) may prune (a write by anyone else has none).
   */
  begin(commitLsn: Lsn, xid?: number): void {
    this.txn = commitLsn;
    this.xid = xid === undefined ? null : String(xid);
    this.skip = new Set(this.sessions.filter((s) => s.pos > commitLsn).map((s) => s.id));
  }

  async insert(t: TableModel, row: Row): Promise<void> {
    const p = await this.rows.route(t, row);
    const columns = Object.keys(row);
    const key = identityOf(t, row);
    await this.updatesFirst(t, key, p);
    await this.inTurn(this.targets(p), (s) => this.touch(s, t, key) && this.queue(s, 'insert', t, columns, columns.map((c) => row[c])));
    if (p.kind === 'shard') this.parents.remember(t, row, p.shard);
  }

  async update(t: TableModel, old: Row | null, row: Row): Promise<void> {
    if (this.batchable(t, old, row)) return this.queueUpdate(t, row);
    await this.drainAll(); // an update reads row counts and may move rows between shards
    if (!t.info.primaryKey.length) return this.updateFull(t, old, row);
    const key = keyOf(t, row, old);
    const { text, values } = updateByKey(t, row, key);
    // a key-changing UPDATE: both keys are dirty (the old one must be gone, the new one right)
    const newKey = t.info.primaryKey.every((k) => typeof row[k] === 'string') ? keyOf(t, row) : key;
    const p = await this.rows.route(t, row);
    if (p.kind === 'all') {
      await this.each(this.live(), (s) => this.touch(s, t, key) && this.touch(s, t, newKey) && this.exec(s, text, values));
      return;
    }
    const target = p.kind === 'shard' && !this.skip.has(p.shard) ? this.byId.get(p.shard)! : undefined;
    if (!target) {
      // Replaying after a crash: the row's new shard already committed this transaction (or its
      // parent is only on such shards). Any old copy on a shard that has not is removed.
      if (p.kind === 'unknown' && this.skip.size === 0) throw new RouteError(p.why);
      for (const s of this.live()) await this.take(s, t, key, false);
      if (p.kind === 'shard') this.parents.remember(t, row, p.shard);
      return;
    }
    this.touch(target, t, key);
    this.touch(target, t, newKey);
    const n = await this.exec(target, text, values);
    if (n === 0) await this.moveIn(target, t, key, row);
    this.parents.remember(t, row, target.id);
  }

  async delete(t: TableModel, old: Row): Promise<void> {
    if (!t.info.primaryKey.length) return this.deleteFull(t, old);
    const key = keyOf(t, old);
    // The stream usually sends only the key of a deleted row, not its unit: every shard is asked
    // (a delete by primary key of a row a shard does not hold costs one index probe).
    const p: Placement = t.config.route.kind !== 'reference' && this.routable(t, old) ? await this.rows.route(t, old) : { kind: 'all' };
    await this.updatesFirst(t, key, p);
    await this.inTurn(p.kind === 'shard' ? this.targets(p) : this.live(), (s) => this.touch(s, t, key) && this.queue(s, 'delete', t, t.info.primaryKey, key));
    this.parents.forget(t, old);
  }

  /**
   * A change this applier does not apply (the reverse stream takes reference rows from one shard
   * only, follow-back.ts): its rows are recorded all the same, so what differs there is proven.
   */
  note(t: TableModel, old: Row | null, row: Row | null): void {
    const rows: Row[] = [];
    if (old) rows.push(old);
    if (row && t.info.primaryKey.length) {
      if (t.info.primaryKey.every((k) => typeof row[k] === 'string')) rows.push(row);
    } else if (row) {
      const merged: Row = {};
      for (const c of t.columns) merged[c] = row[c] !== undefined ? row[c] : old?.[c];
      rows.push(merged);
    }
    for (const s of this.live()) for (const r of rows) this.touch(s, t, t.info.primaryKey.length ? keyOf(t, r) : fullRowOf(t, r));
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
    const set = setColumns(row);
    const values = [...set.map((c) => row[c]), ...key];
    const targets = this.targets(p);
    const id = JSON.stringify(key);
    if (this.queues.updateConflicts(targets.map((s) => s.id), t, set, id)) await this.drainAll();
    const move = p.kind === 'shard' ? { txn: this.txn, key, row } : undefined;
    await this.inTurn(targets, (s) => this.touch(s, t, key) && this.queue(s, 'update', t, set, values, { id, move }));
    if (p.kind === 'shard') this.parents.remember(t, row, p.shard);
  }

  /**
   * Before an INSERT or DELETE: batched updates are sent (and their moves settled) first when the
   * change could meet one of them — the same key, a `via` table (a moving parent takes its children),
   * or several shards at once (settling reads other shards: one at a time keeps it simple).
   */
  private async updatesFirst(t: TableModel, key: readonly (string | null)[], p: Placement): Promise<void> {
    if (!this.queues.hasUpdates()) return;
    if (p.kind !== 'shard' || t.config.route.kind === 'via' || this.queues.queuedUpdate(t.name, JSON.stringify(key))) await this.drainAll();
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
    await this.inTurn(to, (s) => this.touch(s, t, now) && this.queue(s, 'insert', t, t.columns, now));
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
  async flush(end: Lsn, sourceTime: Date): Promise<void> {
    const before = this.confirmed;
    if (this.failed) throw this.failed;
    await this.drainAll(); // batched updates first: a row not on its shard moves, reading the others
    await Promise.all(
      this.sessions.map(async (s) => {
        await this.drain(s, false);
        if (s.pos >= end && !s.open) return;
        if (!s.open) await openShardTransaction(s);
        await writePosition(s.client, this.slot, end > s.pos ? end : s.pos, sourceTime);
        await writeDirty(s.client, this.slot, this.dirty.take(s.id));
        // stashed rows of transactions every shard has committed are no longer needed
        await pruneStash((text, values) => s.sql.run(text, values), this.slot, before);
        await s.client.query('COMMIT');
        s.open = false;
        if (end > s.pos) s.pos = end;
      }),
    );
    this.confirmed = this.sessions.reduce((m, s) => (s.pos < m ? s.pos : m), end);
  }

  async rollback(): Promise<void> {
    await Promise.allSettled(this.inflight.values()); // a batch on its way ends (or fails) before the ROLLBACK
    this.inflight.clear();
    this.unfound.length = 0;
    await Promise.all(
      this.sessions.filter((s) => s.open).map(async (s) => {
        await s.client.query('ROLLBACK').catch(() => undefined);
        s.open = false;
      }),
    );
    this.failed = undefined;
    this.parents.clear(); // it may describe rolled-back changes
    this.dirty.clear();
    this.queues.clear();
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
      if (!this.dirty.has(s.id)) continue;
      await this.land(s); // the shard's connection is free
      try {
        if (!s.open) await openShardTransaction(s);
        await writeDirty(s.client, this.slot, this.dirty.take(s.id));
      } catch (e) {
        throw pgFailure(e, `shard ${s.id}`);
      }
    }
  }

  /** The most changes held at once since the last call (progress reports it as heldChanges). */
  heldHighWater(): number {
    const h = this.heldHigh;
    this.heldHigh = this.held();
    return h;
  }

  private held(): number {
    return this.dirty.size + this.queues.rows;
  }

  /** Adds a row to the shard's batch; a batch it cannot join, or a full one, is sent (see drain). */
  private async queue(
    s: ShardSession,
    kind: BatchKind,
    t: TableModel,
    columns: readonly string[],
    values: (string | null | undefined)[],
    update?: { id: string; move: Move | undefined },
  ): Promise<void> {
    // sending an update batch may queue the rows it moves in: sent too before another kind
    while (this.queues.blocks(s, kind, t, columns)) await this.drain(s, true);
    if (this.queues.add(s, kind, t, columns, values, update)) await this.drain(s, true);
  }

  /**
   * Sends the shard's batch after the one on its way there has landed. `pipelined`: it goes on its
   * way while the stream goes on (not while rows move: see moving); else it is awaited. Rows its
   * updates (or the landed batch's) did not find move in through drainAll.
   */
  private async drain(s: ShardSession, pipelined: boolean): Promise<void> {
    await this.failing(async () => {
      await this.land(s);
      if (!this.queues.has(s.id)) return;
      if (pipelined && !this.moving) {
        const sent = this.queues.send(s);
        sent.catch(() => undefined); // its failure is met when it lands
        this.inflight.set(s.id, sent);
        this.pipelined++;
        return;
      }
      const unfound = await this.queues.send(s);
      if (unfound.length) {
        this.unfound.push(...unfound.map((u) => ({ s, u })));
        await this.drainAll();
      }
    });
  }

  /** Waits for the shard's batch on its way, if any; rows it did not find move in (through drainAll). */
  private async land(s: ShardSession): Promise<void> {
    const sent = this.inflight.get(s.id);
    if (!sent) return;
    this.inflight.delete(s.id);
    await this.failing(async () => {
      const unfound = await sent;
      if (!unfound.length) return;
      this.unfound.push(...unfound.map((u) => ({ s, u })));
      await this.drainAll();
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
   * Every shard's batch on its way landed and what is queued sent (each shard has its own connection:
   * at once), then the rows the updates did not find move in, one at a time, until nothing is queued:
   * a move reads the other shards, which then hold every change before it.
   */
  private async drainAll(): Promise<void> {
    await this.failing(async () => {
      for (;;) {
        const sent = await Promise.allSettled(
          this.sessions.map(async (s) => {
            const landed = this.inflight.get(s.id);
            this.inflight.delete(s.id);
            const unfound = [...((await landed) ?? []), ...(await this.queues.send(s))];
            return unfound.map((u) => ({ s, u }));
          }),
        );
        for (const r of sent) if (r.status === 'rejected') throw r.reason;
        for (const r of sent) if (r.status === 'fulfilled') this.unfound.push(...r.value);
        if (!this.unfound.length) return;
        for (const { s, u } of sameKeyOnce(this.unfound.splice(0))) await this.moveIn(s, u.table, u.move.key, u.move.row, u.move.txn);
      }
    });
  }

  private touch(s: ShardSession, t: TableModel, key: readonly (string | null)[]): true {
    return this.dirty.touch(s.id, t, key, this.xid);
  }

  /**
   * A row queued on several shards, one after the other: queuing may land a batch whose rows then
   * move, reading every shard, and one move at a time keeps that simple.
   */
  private async inTurn(sessions: ShardSession[], fn: (s: ShardSession) => Promise<unknown>): Promise<void> {
    for (const s of sessions) await fn(s);
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

  /** One statement on the shard, after what is queued for it (and what sending that queued: rows moved in). */
  private async exec(s: ShardSession, text: string, values: unknown[], changes = 1): Promise<number> {
    while (this.queues.has(s.id) || this.inflight.has(s.id)) await this.drain(s, false);
    return (await runOnShard(s, text, values, changes)).rowCount ?? 0;
  }

  /** The shard holding a `via` parent: the stream's own recent changes first, else asked of the shards. */
  private async parentShard(parent: TableModel, column: string, value: string): Promise<Placement> {
    const known = this.parents.get(parent, column, value);
    if (known) return { kind: 'shard', shard: known };
    await this.drainAll(); // a parent may be in a batch not yet sent
    const p = await findParentShard(this.sessions, this.skip, parent, column, value);
    if (p.kind === 'shard') this.parents.set(parent, column, value, p.shard);
    return p;
  }

  /** The row updated on the source is not on its new shard: bring it (and its descendants) there. */
  private async moveIn(target: ShardSession, t: TableModel, key: string[], row: Row, txn = this.txn): Promise<void> {
    this.moving++;
    try {
      await this.moveInNow(target, t, key, row, txn);
    } finally {
      this.moving--;
    }
  }

  private async moveInNow(target: ShardSession, t: TableModel, key: string[], row: Row, txn: Lsn): Promise<void> {
    let moved: MovedRow[] | undefined;
    // every other shard is asked at once which holds the row (at most one does)
    const others = this.live().filter((s) => s !== target);
    const found = await Promise.all(others.map(async (s) => (await s.sql.run(selectByKeySql(t), key)).rows[0] as Record<string, string | null> | undefined));
    const at = found.findIndex((r) => r !== undefined);
    if (at >= 0) moved = await this.take(others[at]!, t, key, true, found[at], txn);
    // a crash fell between the giving shard's commit and ours: the giver kept the rows for us
    if (!moved) {
      for (const id of this.skip) {
        const giver = this.byId.get(id)!;
        if ((moved = await stashedRows((text, values) => giver.sql.run(text, values), this.slot, t, key, txn))) break;
      }
    }
    if (!moved) throw new RouteError(`table ${t.name}: the row with key (${key.join(', ')}) updated on the source is on no shard`);
    const [root, ...rest] = moved;
    const merged: Row = { ...root!.row };
    for (const [c, v] of Object.entries(row)) if (v !== undefined) merged[c] = v;
    for (const m of [{ table: t.name, row: merged }, ...rest]) {
      const mt = this.model.table(m.table);
      const columns = Object.keys(m.row);
      this.touch(target, mt, keyOf(mt, m.row));
      await this.queue(target, 'insert', mt, columns, columns.map((c) => m.row[c]));
      this.parents.remember(mt, m.row, target.id);
    }
  }

  /** Removes a row and its `via` descendants from a shard, children first; with `stash`, keeps them for a replay. */
  private async take(s: ShardSession, t: TableModel, key: string[], stash: boolean, known?: Record<string, string | null>, txn = this.txn): Promise<MovedRow[] | undefined> {
    this.moving++;
    try {
      return await this.takeNow(s, t, key, stash, known, txn);
    } finally {
      this.moving--;
    }
  }

  private async takeNow(s: ShardSession, t: TableModel, key: string[], stash: boolean, known: Record<string, string | null> | undefined, txn: Lsn): Promise<MovedRow[] | undefined> {
    const root = known ?? ((await s.sql.run(selectByKeySql(t), key)).rows[0] as Record<string, string | null> | undefined);
    if (!root) return undefined;
    const rows = await withDescendants((text, values) => s.sql.run(text, values), this.children, t, root);
    for (const m of [...rows].reverse()) {
      const mt = this.model.table(m.table);
      this.touch(s, mt, keyOf(mt, m.row));
      await this.queue(s, 'delete', mt, mt.info.primaryKey, keyOf(mt, m.row));
    }
    if (stash) await this.exec(s, STASH_SQL, stashValues(this.slot, txn, this.seq++, t, key, rows));
    return rows;
  }
}

/**
 * Rows not found, each key moved in once: a key updated again on the same shard while its earlier
 * update was on its way comes back twice; it moves in with both updates' columns, the later winning.
 */
function sameKeyOnce(unfound: readonly { s: ShardSession; u: Unfound }[]): { s: ShardSession; u: Unfound }[] {
  const once = new Map<string, { s: ShardSession; u: Unfound }>();
  for (const m of unfound) {
    const k = `${m.s.id}\0${m.u.table.name}\0${JSON.stringify(m.u.move.key)}`;
    const had = once.get(k);
    if (!had) {
      once.set(k, m);
      continue;
    }
    const row: Row = { ...had.u.move.row };
    for (const [c, v] of Object.entries(m.u.move.row)) if (v !== undefined) row[c] = v;
    had.u = { table: had.u.table, move: { ...had.u.move, row } };
  }
  return [...once.values()];
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
