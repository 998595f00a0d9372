import type { TableModel } from '../tables/model.js';
import type { DirtyRow } from './positions.js';

/**
 * Per shard, the rows written in its open transaction (table + primary key, or all values of a
 * keyless row), recorded in follow_dirty with the writes they name (see positions.ts): cutover
 * re-proves exactly these rows (or the prover, those named with the source transaction `xid`). A
 * row written twice is recorded once, with its last writer.
 */
export class DirtyRows {
  private readonly byShard = new Map<string, Map<string, DirtyRow>>();

  /** Notes a row written on the shard (always true, to chain before the write). */
  touch(shard: string, t: TableModel, key: readonly (string | null)[], xid: string | null): true {
    let m = this.byShard.get(shard);
    if (!m) this.byShard.set(shard, (m = new Map()));
    const k = JSON.stringify(key);
    m.set(`${t.name}\0${k}`, [t.name, k, xid]);
    return true;
  }

  /** The shard's rows, forgotten here (they are being written in its transaction). */
  take(shard: string): DirtyRow[] {
    const rows = [...(this.byShard.get(shard)?.values() ?? [])];
    this.byShard.delete(shard);
    return rows;
  }

  has(shard: string): boolean {
    return (this.byShard.get(shard)?.size ?? 0) > 0;
  }

  /** Rows held over all shards. */
  get size(): number {
    let n = 0;
    for (const m of this.byShard.values()) n += m.size;
    return n;
  }

  clear(): void {
    this.byShard.clear();
  }
}
