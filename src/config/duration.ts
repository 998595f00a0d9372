/**
 * A duration as shardctl reads it from flags: `500ms`, `60s`, `2m`, `1h` (a bare number is seconds).
 * Throws an Error whose message completes "--flag …" when the text is not one.
 *
 * @example parseDurationMs('2m') // 120000
 */
export function parseDurationMs(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(text);
  if (!m) throw new Error(`must be a duration such as 500ms, 60s, 2m or 1h, got "${text}"`);
  return Math.round(Number(m[1]) * UNIT_MS[(m[2] ?? 's') as keyof typeof UNIT_MS]);
}

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
