import type pg from 'pg';
import { parentCell, shardCell } from '../cells/h3.js';
import { h3Strategy, viaChildren, type Model, type TableModel, type ViaChild } from '../tables/model.js';
import type { Row } from '../stream/decoder.js';
import type { Lsn } from '../db/lsn.js';
import { DirtyRows } from '../stream/dirty.js';
import { writeDirty, writePosition } from '../stream/positions.js';
import { openShardTransaction, runOnShard, type ShardSession } from '../stream/shard-session.js';
import { withDescendants } from '../stream/stash.js';
import { deleteRowSql, insertSql, keyOf, selectByColumnSql, selectByKeySql, Statements, updateByKey } from '../stream/statements.js';

/** A change the move cannot apply exactly: the move stops and is undone (its message says why). */
export class UnitStreamError extends Error {}

/**
 * Applies the old shard's stream to the new shard for the units of ONE move group (a single unit
 * is a group of one), exactly: a change is applied when its row belongs to one of them, decided by the functions the copy scopes rows with (the key column's
 * text, an H3 index column's parent cell, lat/lng through shardCell, a `via` row through its parent).
 * The old shard streams every unit's changes, and the new shard holds other units' live rows too, so
 * an UPDATE or DELETE (which may carry only the key) first reads the row the new shard holds by that
 * key and touches it only if it is a moving unit's: a key another unit uses on the new shard is
 * never touched. A `via` row belongs to the unit when its parent on the new shard does (the new shard
 * holds the unit's rows exactly as of the stream position); a parent deleted earlier in the same
 * source transaction (ON DELETE CASCADE deletes the parent first) is remembered for its children.
 *
 * Source transactions are applied in one transaction on the new shard that also writes the stream
 * position (`flush`), so after a crash the shard says exactly which source transactions it holds.
 * The same transaction records the key of every row of a moving unit it wrote (follow_dirty, under
 * that unit's own key, `dirtyKey`): the copy was proven at its snapshot, so these are the only rows the move must prove
 * again (unit-changed.ts).
 */
export class UnitApplier {
  private skip = false;
  /** changes applied since the last flush */
  pending = 0;
  /** the new shard's session (the same transaction and statement helpers as the follower's) */
  private readonly s: ShardSession;
  private readonly children: Map<string, ViaChild[]>;
  /** link values of the moving units' parent rows deleted in the current source transaction → their unit */
  private gone = new Map<string, string>();
  /** keys of the moving units' rows written in the open transaction, by the unit's dirty key */
  private readonly dirty = new DirtyRows();

  constructor(
    private readonly model: Model,
    client: pg.Client,
    shard: string,
    private readonly slot: string,
    private readonly units: ReadonlySet<string>,
    /** where a unit's written rows are recorded (follow_dirty's slot column): one record per unit, proven per unit */
    private readonly dirtyKey: (unit: string) => string,
    /** the source position the shard has committed */
    pos: Lsn,
    replicaRole: boolean,
  ) {
    this.s = { id: shard, client, sql: new Statements(client), replicaRole, pos, open: false, applied: 0, statements: 0 };
    this.children = viaChildren(model);
  }

  /** the source position the shard has committed */
  get pos(): Lsn {
    return this.s.pos;
  }

  /** changes applied by this run */
  get applied(): number {
    return this.s.applied;
  }

  /** A source transaction starts; skipped when the shard committed it before a crash. */
  begin(commitLsn: Lsn): void {
    this.skip = this.s.pos > commitLsn;
    this.gone = new Map();
  }

  async insert(t: TableModel, row: Row): Promise<void> {
    if (this.skip) return;
    const unit = await this.moving(t, row);
    if (unit === undefined) return;
    const columns = Object.keys(row);
    await this.exec(insertSql(t, columns), columns.map((c) => row[c]));
    this.mark(t, [unit], keyOf(t, row));
    for (const c of this.children.get(t.name) ?? []) this.gone.delete(linkKey(t, c.parentColumn, row[c.parentColumn]));
  }

  async update(t: TableModel, old: Row | null, row: Row): Promise<void> {
    if (this.skip) return;
    const key = keyOf(t, row, old);
    const held = await this.held(t, key);
    const merged: Row = { ...(held?.row ?? {}) };
    for (const [c, v] of Object.entries(row)) if (v !== undefined) merged[c] = v;
    const joins = await this.moving(t, merged);
    const stays = joins !== undefined;
    // a key-changing UPDATE: both keys; a row going from one moving unit to another: in both records
    const owners = [held?.unit, joins].filter((u): u is string => u !== undefined);
    if (owners.length) this.mark(t, owners, key, keyOf(t, merged));
    if (held && stays) {
      const u = updateByKey(t, row, key);
      await this.exec(u.text, u.values);
    } else if (held) {
      await this.remove(t, held.row, held.unit); // the row left the unit (its unit column changed): it and its via rows go
    } else if (stays) {
      // the row joined the unit: the stream has all of it only when no column was an unchanged TOAST
      // value, and never the rows that reach it through via tables (they did not change)
      const missing = t.columns.filter((c) => merged[c] === undefined);
      if (missing.length || this.children.has(t.name)) {
        throw new UnitStreamError(
          `table ${t.name}: a row (key ${key.join(', ')}) joined unit ${joins} during the move by an UPDATE of its unit column, ` +
            (missing.length ? `and its columns ${missing.join(', ')} were not streamed` : 'and the rows of tables that reach it through via are not streamed'),
        );
      }
      const columns = Object.keys(merged);
      await this.exec(insertSql(t, columns), columns.map((c) => merged[c]));
    }
  }

  async delete(t: TableModel, old: Row): Promise<void> {
    if (this.skip) return;
    const key = keyOf(t, old);
    const held = await this.held(t, key);
    if (!held) return;
    await this.exec(deleteRowSql(t), key);
    this.mark(t, [held.unit], key);
    for (const c of this.children.get(t.name) ?? []) this.gone.set(linkKey(t, c.parentColumn, held.row[c.parentColumn]), held.unit);
  }

  /** Commits what was applied with the position `end` (the end of the last complete source transaction). */
  async flush(end: Lsn): Promise<void> {
    const s = this.s;
    if (end <= s.pos && !s.open) return;
    if (!s.open) await openShardTransaction(s);
    await writePosition(s.client, this.slot, end > s.pos ? end : s.pos, new Date());
    for (const u of this.units) if (this.dirty.has(this.dirtyKey(u))) await writeDirty(s.client, this.dirtyKey(u), this.dirty.take(this.dirtyKey(u)));
    await s.client.query('COMMIT');
    s.open = false;
    this.pending = 0;
    if (end > s.pos) s.pos = end;
  }

  async rollback(): Promise<void> {
    if (!this.s.open) return;
    await this.s.client.query('ROLLBACK').catch(() => undefined);
    this.s.open = false;
    this.dirty.clear();
  }

  /** The row the shard holds under this key, when it belongs to a moving unit, and that unit. */
  private async held(t: TableModel, key: string[]): Promise<{ row: Row; unit: string } | undefined> {
    const row = (await this.run(selectByKeySql(t), key)).rows[0] as Row | undefined;
    const unit = row && (await this.moving(t, row));
    return row && unit !== undefined ? { row, unit } : undefined;
  }

  /** The moving unit a row (as the stream or the shard prints it) belongs to; undefined for any other unit. */
  private async moving(t: TableModel, row: Row): Promise<string | undefined> {
    const u = await this.unitOf(t, row);
    return u !== undefined && this.units.has(u) ? u : undefined;
  }

  /** The unit a row belongs to (a via row: its parent's on the new shard, when that is a moving unit). */
  private async unitOf(t: TableModel, row: Row): Promise<string | undefined> {
    const r = t.config.route;
    const value = (c: string) => {
      const v = row[c];
      if (v === undefined) throw new UnitStreamError(`table ${t.name}: the stream did not carry ${c}, which places the row`);
      return v;
    };
    switch (r.kind) {
      case 'key':
        return value(r.column) ?? undefined;
      case 'cell': {
        const v = value(r.column);
        return v === null ? undefined : parentCell(BigInt(v).toString(16), h3Strategy(this.model.config).shardResolution);
      }
      case 'latlng': {
        const lat = value(r.lat);
        const lng = value(r.lng);
        if (lat === null || lng === null) return undefined;
        const st = h3Strategy(this.model.config);
        return shardCell(Number(lat), Number(lng), { indexResolution: st.indexResolution, shardResolution: st.shardResolution });
      }
      case 'via': {
        const v = value(r.column);
        if (v === null) return undefined;
        const parent = this.model.table(r.parent);
        const gone = this.gone.get(linkKey(parent, r.parentColumn, v));
        if (gone !== undefined) return gone;
        const rows = (await this.run(selectByColumnSql(parent, r.parentColumn), [[v]])).rows as Row[];
        for (const p of rows) {
          const u = await this.moving(parent, p);
          if (u !== undefined) return u;
        }
        return undefined;
      }
      default:
        return undefined; // reference tables are not in the stream's publication
    }
  }

  /** Deletes a row of `unit` and the unit's rows that reach it through via tables, children first. */
  private async remove(t: TableModel, row: Row, unit: string): Promise<void> {
    const rows = await withDescendants((text, values) => this.run(text, values), this.children, t, row as Record<string, string | null>);
    for (const m of rows.reverse()) {
      const mt = this.model.table(m.table);
      await this.exec(deleteRowSql(mt), keyOf(mt, m.row));
      this.mark(mt, [unit], keyOf(mt, m.row));
    }
  }

  /** Records the keys of rows of `units` this run wrote (follow_dirty, per unit): proven before the fence or inside it. */
  private mark(t: TableModel, units: readonly string[], ...keys: string[][]): void {
    // no source transaction: proven by the move, not the prover
    for (const u of units) for (const k of keys) this.dirty.touch(this.dirtyKey(u), t, k, null);
  }


  /** A read in the shard's open transaction (not counted as a change). */
  private async run(text: string, values: unknown[]): Promise<pg.QueryResult> {
    return runOnShard(this.s, text, values, 0);
  }

  private async exec(text: string, values: unknown[]): Promise<void> {
    await runOnShard(this.s, text, values, 1);
    this.pending++;
  }
}

const linkKey = (t: TableModel, column: string, v: string | null | undefined) => `${t.name}\0${column}\0${v ?? ''}`;
