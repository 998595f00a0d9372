import { randomBytes } from 'node:crypto';
import { open, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { blockedError } from '../errors.js';

/**
 * Writes `text` to `file` atomically for node_exporter's textfile collector, which may read the
 * directory at any moment: a temp file in the same directory (same filesystem, so rename is
 * atomic; named `.*.tmp` so the collector, which reads `*.prom`, ignores it), fsync, rename, then
 * fsync the directory so the rename itself survives a crash. The temp file never outlives a failure.
 *
 * @example await writeTextfile('/var/lib/node_exporter/textfile/shardctl.prom', await prometheusText(report));
 */
export async function writeTextfile(file: string, text: string): Promise<void> {
  const dir = path.dirname(path.resolve(file));
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const fh = await open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(text, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    throw blockedError(`${file}: cannot write the metrics textfile (${code})`, { cause: e });
  }
  const d = await open(dir, 'r').catch(() => undefined); // not possible on every platform
  if (d) await d.sync().catch(() => undefined).finally(() => d.close());
}
