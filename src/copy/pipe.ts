import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';

export interface CopyResult {
  rows: number;
  bytes: number;
}

/**
 * Streams `COPY (select) TO STDOUT` on `src` into `COPY target (columns) FROM STDIN` on `dst`, with
 * backpressure end to end (memory stays flat whatever the size). When the promise resolves the
 * target server has acknowledged every row. On any failure the caller must destroy BOTH clients: a
 * source left mid-COPY cannot be reused (NOTES-COPY.md).
 */
export async function pipeCopy(
  src: pg.ClientBase,
  dst: pg.ClientBase,
  select: string,
  target: string,
  onBytes?: (bytes: number) => void,
  /** 'binary' only where both sides' column types are proven identical (tables/copy-format.ts) */
  format: 'text' | 'binary' = 'text',
): Promise<CopyResult> {
  const opt = format === 'binary' ? ' (FORMAT binary)' : '';
  const out = src.query(copyTo(`COPY (${select}) TO STDOUT${opt}`));
  const into = dst.query(copyFrom(`COPY ${target} FROM STDIN${opt}`));
  let bytes = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      bytes += chunk.length;
      onBytes?.(chunk.length);
      done(null, chunk);
    },
  });
  await pipeline(out, meter, into);
  return { rows: into.rowCount, bytes };
}

/**
 * Runs a COPY … FROM STDIN fed by an async iterable of text lines (each ending in \n). `FREEZE`:
 * the rows are written frozen (the table must have been created or emptied by this transaction).
 */
export async function copyLinesInto(dst: pg.ClientBase, target: string, lines: AsyncIterable<string> | Iterable<string>, option?: 'FREEZE'): Promise<number> {
  const into = dst.query(copyFrom(`COPY ${target} FROM STDIN${option ? ` (${option})` : ''}`));
  // lines gathered into chunks of about 64 KiB: one stream write per line cost more than the lines
  // (the (pk, cell) lines of a lat/lng table are ~25 bytes each)
  await pipeline(async function* () {
    let chunk = '';
    for await (const l of lines) {
      chunk += l;
      if (chunk.length >= 65_536) {
        yield chunk;
        chunk = '';
      }
    }
    if (chunk) yield chunk;
  }, into);
  return into.rowCount;
}

/**
 * Streams the rows of `COPY (select) TO STDOUT` a network chunk at a time: each item holds the
 * complete rows that chunk finished, each row an array of raw text fields (COPY text format, `\N` =
 * NULL). One generator step per chunk, not per row: a step per row (a promise and a turn of the
 * microtask queue each) cost a batch's checksums of 200,000 tenants more than reading the rows.
 */
export async function* copyRowChunks(src: pg.ClientBase, select: string): AsyncGenerator<string[][]> {
  for await (const text of copyLineChunks(src, select)) yield text.split('\n').map((line) => line.split('\t'));
}

/**
 * The text of `COPY (select) TO STDOUT` a network chunk at a time: each item the complete lines
 * that chunk finished, without the last line's newline (for callers that read the fields in place,
 * without an array per row).
 */
export async function* copyLineChunks(src: pg.ClientBase, select: string): AsyncGenerator<string> {
  const out = src.query(copyTo(`COPY (${select}) TO STDOUT`));
  // Chunks end anywhere, also inside a multi-byte character: decode as one stream, never per chunk.
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  let rest = '';
  for await (const chunk of out as AsyncIterable<Buffer>) {
    const text = rest + utf8.decode(chunk, { stream: true });
    const end = text.lastIndexOf('\n');
    if (end < 0) {
      rest = text;
      continue;
    }
    rest = text.slice(end + 1);
    yield text.slice(0, end);
  }
  rest += utf8.decode();
  if (rest) yield rest;
}

/** The rows of `COPY (select) TO STDOUT` one by one (copyRowChunks, where a row's own step is worth its cost). */
export async function* copyRows(src: pg.ClientBase, select: string): AsyncGenerator<string[]> {
  for await (const rows of copyRowChunks(src, select)) yield* rows;
}
