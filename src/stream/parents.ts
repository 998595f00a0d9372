import type { TableModel, ViaChild } from '../tables/model.js';
import type { Row } from './decoder.js';
import type { Placement } from './route.js';
import type { ShardSession } from './shard-session.js';
import { existsSql } from './statements.js';

/**
 * Routing by parent: the shard holding a `via` table's parent row. The stream's own recent changes
 * are remembered here (a row inserted or moved names the shard its children go to); anything else
 * is asked of the shards (findParentShard).
 */
export class ParentCache {
  private readonly known = new Lru<string, string>(200_000);

  constructor(private readonly children: ReadonlyMap<string, readonly ViaChild[]>) {}

  get(parent: TableModel, column: string, value: string): string | undefined {
    return this.known.get(cacheKey(parent.name, column, value));
  }

  set(parent: TableModel, column: string, value: string, shard: string): void {
    this.known.set(cacheKey(parent.name, column, value), shard);
  }

  /** The row now lives on `shard`: its children follow it there. */
  remember(t: TableModel, row: Row, shard: string): void {
    for (const c of this.children.get(t.name) ?? []) {
      const v = row[c.parentColumn];
      if (v !== undefined && v !== null) this.known.set(cacheKey(t.name, c.parentColumn, v), shard);
    }
  }

  /** The row is gone. */
  forget(t: TableModel, row: Row): void {
    for (const c of this.children.get(t.name) ?? []) {
      const v = row[c.parentColumn];
      if (v !== undefined && v !== null) this.known.delete(cacheKey(t.name, c.parentColumn, v));
      else this.known.clear(); // cannot tell which entry: start over (lookups refill it)
    }
  }

  clear(): void {
    this.known.clear();
  }
}

/**
 * Asks every shard at once which holds a parent row. A shard that has not committed the current
 * source transaction (not in `skip`) is authoritative (it is exactly as of the transaction's
 * start); one that has may already reflect later changes.
 */
export async function findParentShard(sessions: readonly ShardSession[], skip: ReadonlySet<string>, parent: TableModel, column: string, value: string): Promise<Placement> {
  const found = (
    await Promise.all(sessions.map(async (s) => ((await s.sql.run(existsSql(parent, column), [value])).rowCount ? s.id : undefined)))
  ).filter((x): x is string => x !== undefined);
  const shard = found.find((s) => !skip.has(s)) ?? found[0];
  if (shard === undefined) return { kind: 'unknown', why: `${parent.name}.${column} = ${value} is on no shard: a row of a child table without its parent` };
  return { kind: 'shard', shard };
}

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
