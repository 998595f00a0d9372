import type { Config } from '../config/types.js';

export type CapacityStatus = 'active' | 'full' | 'read-only';

export interface CellStatus {
  readonly cell: string;
  readonly shard: string;
  readonly region?: string;
  readonly status: Exclude<CapacityStatus, 'active'>;
}

/**
 * The mapped cells whose capacity_status restricts them (h3 only), in cell order:
 *  - read-only: writes to the cell's rows are refused on its shard (the write fence);
 *  - full: the cell stays on its shard and that shard takes no new cell in a proposed mapping.
 */
export function restrictedCells(config: Pick<Config, 'strategy'>): CellStatus[] {
  if (config.strategy.kind !== 'h3') return [];
  return config.strategy.mapping
    .filter((m) => m.capacityStatus === 'full' || m.capacityStatus === 'read-only')
    .map((m) => ({ cell: m.cell, shard: m.shard, ...(m.region ? { region: m.region } : {}), status: m.capacityStatus as CellStatus['status'] }))
    .sort((a, b) => a.cell.localeCompare(b.cell));
}

/** Per shard: its read-only and full cells (shards without any are left out). */
export function restrictedByShard(config: Pick<Config, 'strategy'>): { shard: string; readOnly: string[]; full: string[] }[] {
  const out = new Map<string, { shard: string; readOnly: string[]; full: string[] }>();
  for (const c of restrictedCells(config)) {
    const s = out.get(c.shard) ?? out.set(c.shard, { shard: c.shard, readOnly: [], full: [] }).get(c.shard)!;
    (c.status === 'full' ? s.full : s.readOnly).push(c.cell);
  }
  return [...out.values()].sort((a, b) => a.shard.localeCompare(b.shard));
}
