/**
 * Human units for reports. A kB is 1024 bytes everywhere shardctl shows or reads a size (as
 * PostgreSQL's pg_size_pretty, the config's `capacity: 2GB` and health's messages).
 */
export function formatBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

export const formatCount = (n: number | bigint) => Number(n).toLocaleString('en-US');

export function formatSeconds(s: number): string {
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  return `${m}m${String(Math.round(s - m * 60)).padStart(2, '0')}s`;
}

/** A plain text table: columns padded, numbers right-aligned. */
export function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const numeric = header.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === 'number' || /^[\d,.]+( \w+)?%?$/.test(String(r[i]))));
  return cells
    .map((r) => r.map((c, i) => (numeric[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd())
    .join('\n');
}

/** A horizontal bar of `value / max` in `width` characters. */
export function bar(value: number, max: number, width = 30): string {
  const n = max > 0 ? Math.round((value / max) * width) : 0;
  return '█'.repeat(n) + '·'.repeat(Math.max(0, width - n));
}

/** `cross-shard rows: public.bumps 12 of 4,057 (0.3%) live on more than one shard` */
export function crossShardLine(c: { table: string; rows?: number; crossShard: number }): string {
  const of = c.rows === undefined ? '' : ` of ${formatCount(c.rows)} (${c.rows ? ((100 * c.crossShard) / c.rows).toFixed(1) : '0.0'}%)`;
  return `cross-shard rows: ${c.table} ${formatCount(c.crossShard)}${of} live on more than one shard`;
}
