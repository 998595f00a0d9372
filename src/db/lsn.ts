/**
 * A WAL position (pg_lsn) inside shardctl: an exact 64-bit integer, branded so that no other number
 * passes for one. It is converted only at the edges: parsed from a pg_lsn's text `X/Y` (two hex
 * halves) where SQL or the replication protocol hands one over, formatted back where one is sent
 * or shown. Compare with < and >; subtract for bytes.
 */
export type Lsn = bigint & { readonly __walPosition: true };

/** The start of WAL: a stream that has applied nothing yet. */
export const ZERO_LSN = 0n as Lsn;

/** A pg_lsn's text form as a position; null when there is none (SQL NULL) or it is not one. */
export function parseLsn(text: string | null | undefined): Lsn | null {
  if (!text) return null;
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text);
  return m ? (((BigInt(`0x${m[1]}`) << 32n) + BigInt(`0x${m[2]}`)) as Lsn) : null;
}

/** A pg_lsn's text form as a position, where the server always gives one. */
export function lsn(text: string | null | undefined): Lsn {
  const n = parseLsn(text);
  if (n === null) throw new Error(`internal: not an LSN: ${String(text)}`);
  return n;
}

/** The pg_lsn text form (`16/B374D848`), as PostgreSQL prints it and accepts it as a `pg_lsn` parameter. */
export function lsnText(n: Lsn): string {
  return `${(n >> 32n).toString(16).toUpperCase()}/${(n & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** The later of two positions. */
export const laterLsn = (a: Lsn, b: Lsn): Lsn => (a > b ? a : b);

/** Bytes from `behind` up to `ahead`, never negative (two servers read a moment apart can cross); null when one is unknown. */
export function lsnDiff(ahead: Lsn | null, behind: Lsn | null): number | null {
  if (ahead === null || behind === null) return null;
  return ahead > behind ? Number(ahead - behind) : 0;
}
