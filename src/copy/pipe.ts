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

/** Runs a COPY … FROM STDIN fed by an async iterable of text lines (each ending in \n). */
export async function copyLinesInto(dst: pg.ClientBase, target: string, lines: AsyncIterable<string> | Iterable<string>): Promise<number> {
  const into = dst.query(copyFrom(`COPY ${target} FROM STDIN`));
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

/** Streams the rows of `COPY (select) TO STDOUT` as arrays of raw text fields (COPY text format, `\N` = NULL). */
export async function* copyRows(src: pg.ClientBase, select: string): AsyncGenerator<string[]> {
  const out = src.query(copyTo(`COPY (${select}) TO STDOUT`));
  // Chunks end anywhere, also inside a multi-byte character: decode as one stream, never per chunk.
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  let rest = '';
  for await (const chunk of out as AsyncIterable<Buffer>) {
    const text = rest + utf8.decode(chunk, { stream: true });
    const lines = text.split('\n');
    rest = lines.pop() ?? '';
    for (const line of lines) yield line.split('\t');
  }
  rest += utf8.decode();
  if (rest) yield rest.split('\t');
}
