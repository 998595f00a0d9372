/** A pg_lsn's text form `X/Y` (two hex halves) as one exact 64-bit position. */
export function parseLsn(text: string | null | undefined): bigint | null {
  if (!text) return null;
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text);
  return m ? (BigInt(`0x${m[1]}`) << 32n) + BigInt(`0x${m[2]}`) : null;
}

/** Bytes from `behind` up to `ahead`, never negative (two servers read a moment apart can cross). */
export function lsnDiff(ahead: string | null | undefined, behind: string | null | undefined): number | null {
  const a = parseLsn(ahead);
  const b = parseLsn(behind);
  if (a === null || b === null) return null;
  return a > b ? Number(a - b) : 0;
}
