import { parseLsn } from '../db/lsn.js';

/** WAL positions as exact 64-bit integers (a pg_lsn's `X/Y` text is two hex halves). */
export function lsn(text: string | null | undefined): bigint {
  const n = parseLsn(text);
  if (n === null) throw new Error(`internal: not an LSN: ${String(text)}`);
  return n;
}

export function lsnText(n: bigint): string {
  return `${(n >> 32n).toString(16).toUpperCase()}/${(n & 0xffffffffn).toString(16).toUpperCase()}`;
}
