/**
 * The one syntax for durations and sizes, wherever shardctl reads them (flags, their environment
 * twins, the config file): `500ms`, `60s`, `2m`, `1h`; `64MB`, `2GB` (binary units: 1 MB = 1024² bytes).
 * A bare number is read in the unit the flag always had (reported as `bare`, so the CLI can ask for
 * the unit to be written out).
 */
const DURATION = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/i;
const MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

export interface Duration {
  readonly ms: number;
  /** written without a unit: read in the flag's historical unit */
  readonly bare: boolean;
}

/** Parses a duration; throws an Error whose message completes "--flag …" when it is not one. */
export function parseDuration(text: string, bareUnit: 'ms' | 's'): Duration {
  const m = DURATION.exec(text);
  if (!m) throw new Error(`must be a duration such as 500ms, 60s or 2m, got "${text}"`);
  const unit = (m[2] ?? bareUnit).toLowerCase();
  return { ms: Number(m[1]) * MS[unit]!, bare: m[2] === undefined };
}

const SIZE = /^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?\s*$/i;
const BYTES: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3, tb: 1024 ** 4 };

/** Parses a size (`64MB`, `2 GB`, or bare bytes) into bytes; undefined when it is not one. */
export function parseSize(text: string): number | undefined {
  const m = SIZE.exec(text);
  if (!m) return undefined;
  const unit = (m[2] ?? 'b').toLowerCase().replace('ib', 'b');
  return Math.round(Number(m[1]) * BYTES[unit]!);
}

/** A ratio such as 0.8: a number from 0 to 1; undefined when it is not one. */
export function parseRatio(text: string): number | undefined {
  const n = Number(text);
  return text.trim() !== '' && Number.isFinite(n) && n >= 0 && n <= 1 ? n : undefined;
}
