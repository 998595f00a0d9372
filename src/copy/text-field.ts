/*
 * One field of PostgreSQL's COPY text format, both ways. COPY TO escapes only the backslash and
 * the control characters below (never octal or hex), and writes NULL as \N.
 */

const DECODE: Readonly<Record<string, string>> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\' };

/** A field as COPY TO wrote it, back to its text (NULL is not a text: test for `\N` first). */
export function decodeCopyField(field: string): string {
  return field.includes('\\') ? field.replace(/\\(.)/g, (_, c: string) => DECODE[c] ?? c) : field;
}

/** A text value as a field of a COPY FROM line. */
export function encodeCopyField(value: string): string {
  return /[\\\t\n\r]/.test(value) ? value.replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r')) : value;
}
