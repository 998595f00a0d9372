import type { TableModel } from '../tables/model.js';
import type { Homes } from './homes.js';
import type { ServerScan } from '../unit-copy/scan.js';
import type { Finding, Sums } from './types.js';

const NONE: Sums = { rows: 0, checksum: '0' };

/**
 * Per unit and sharded table: the source's rows and checksum against those on the unit's shard.
 * A unit counts wherever it has rows (on the source or on any shard), so a unit missing on its
 * shard, left over on it, or changed in one byte is found. Tables a shard could not be queried
 * for (schema drift) or shards that could not be read are reported elsewhere, not here.
 */
export function compareUnits(
  tables: readonly TableModel[],
  source: ServerScan,
  shards: ReadonlyMap<string, ServerScan>,
  homes: Homes,
): Extract<Finding, { kind: 'mismatch' }>[] {
  const out: Extract<Finding, { kind: 'mismatch' }>[] = [];
  if (source.error) return out;
  for (const t of tables) {
    const want = source.tables.get(t.name)?.units;
    if (!want) continue;
    const units = new Set(want.keys());
    for (const s of shards.values()) for (const u of s.tables.get(t.name)?.units.keys() ?? []) units.add(u);
    for (const unit of [...units].sort(byUnit)) {
      const shard = homes.home(unit);
      const scan = shards.get(shard);
      if (scan && (scan.error || scan.skipped.has(t.name))) continue;
      const a = want.get(unit) ?? NONE;
      const b = scan?.tables.get(t.name)?.units.get(unit) ?? NONE;
      if (a.rows !== b.rows || a.checksum !== b.checksum) out.push({ kind: 'mismatch', unit, table: t.name, shard, source: a, target: b });
    }
  }
  return out;
}

/** Numeric units in numeric order, others (H3 cells) as text. */
export function byUnit(a: string, b: string): number {
  const na = /^-?\d+$/.test(a);
  const nb = /^-?\d+$/.test(b);
  if (na && nb) {
    const x = BigInt(a);
    const y = BigInt(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  return na === nb ? (a < b ? -1 : a > b ? 1 : 0) : na ? -1 : 1;
}
