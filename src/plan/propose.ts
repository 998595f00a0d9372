import type { Config } from '../config/types.js';
import { usageError } from '../errors.js';

export interface ProposedMapping {
  shards: { shard: string; cells: number; bytes: number }[];
  imbalance: number;
  mapping: { cell: string; shard: string }[];
}

/**
 * Bin-packs H3 cells onto `n` shards by volume: largest cell first onto the least loaded shard
 * (LPT scheduling; within 4/3 of the optimum). Shard ids are the configured ones, then s<i> for more.
 */
export function proposeMapping(cells: readonly { unit: string; bytes: number }[], config: Config, n: number): ProposedMapping {
  if (!Number.isInteger(n) || n < 1) throw usageError('--shards must be a whole number of at least 1');
  const ids = Array.from({ length: n }, (_, i) => config.shards[i]?.id ?? `s${i}`);
  const bins = ids.map((shard) => ({ shard, cells: 0, bytes: 0 }));
  const mapping: { cell: string; shard: string }[] = [];
  for (const c of [...cells].sort((a, b) => b.bytes - a.bytes || a.unit.localeCompare(b.unit))) {
    const bin = bins.reduce((best, b) => (b.bytes < best.bytes ? b : best));
    bin.cells++;
    bin.bytes += c.bytes;
    mapping.push({ cell: c.unit, shard: bin.shard });
  }
  const mean = bins.reduce((s, b) => s + b.bytes, 0) / n;
  return { shards: bins, imbalance: mean > 0 ? Math.max(...bins.map((b) => b.bytes)) / mean : 1, mapping: mapping.sort((a, b) => a.cell.localeCompare(b.cell)) };
}
