import type pg from 'pg';
import { connect, type Endpoint } from '../db/connect.js';
import { blockedError } from '../errors.js';
import type { Model } from '../tables/model.js';
import type { Lsn } from '../db/lsn.js';
import type { Applier } from './apply.js';
import { emitHeartbeat, parseControl } from './control.js';
import type { StreamNames } from './names.js';
import { ddlError, shapeOf, truncateError } from './shape.js';
import { runStream } from './stream.js';

export interface ApplyLoopOptions {
  /** flush (commit on the shards, then confirm to the source) after this many changes … */
  batchChanges: number;
  /** … or this long after the last flush, at the next source commit */
  batchMs: number;
  /** each table's shape as the copy saw it: a relation message with another shape is DDL, which stops the stream */
  shapes: ReadonlyMap<string, string>;
  /** false: the table's changes are not applied, only recorded (the reverse stream takes reference rows from one shard only) */
  takes?: (table: string) => boolean;
  /** after each applied change */
  onChange?: () => void;
  /** after each flush, with the commit time of the last source transaction it covers */
  onFlush?: (sourceTime: Date) => void;
  /** once the source streams */
  onStart?: () => void;
  /** at each heartbeat message (about every second), with the relfilenodes it carries: a check that may stop the stream by throwing */
  onHeartbeat?: (relFiles: Record<string, string> | undefined) => void;
  /** between applied batches: waits while production asks the apply to slow down (src/throttle/) */
  throttle?: { wait(): Promise<void> };
  signal?: AbortSignal;
}

/**
 * The follower loop shared by `migrate --follow` (monolith → shards) and `rollback --follow` (a shard
 * → the monolith): applies the slot's changes from `start` through `applier`, source transactions
 * batched into one transaction per target, flushed only at source transaction boundaries, until a
 * 'stop' message has been flushed. A 'barrier' message flushes at once (cutover and rollback wait for
 * it). On an error it keeps what can be kept before rejecting with it: stopped between source
 * transactions (or on DDL/TRUNCATE before any change of the transaction), the finished ones are
 * flushed; in the middle of one, the batch is rolled back and the stream replays it next time.
 */
export async function applyStream(source: Endpoint, names: StreamNames, start: Lsn, model: Model, applier: Applier, o: ApplyLoopOptions): Promise<void> {
  let inTxn = false;
  let txnChanges = 0;
  let batch = 0;
  let lastEnd = applier.confirmed;
  let lastTime = new Date();
  let flushedAt = Date.now();
  let flushNow = false;
  let stop = false;
  const tables = new Map(model.tables.map((t) => [t.name, t]));
  const flush = async (end: Lsn, at: Date) => {
    await applier.flush(end, at);
    o.onFlush?.(at);
    flushedAt = Date.now();
    batch = 0;
    flushNow = false;
  };
  try {
    await runStream(
      source,
      names,
      start,
      async (e, control) => {
        switch (e.kind) {
          case 'begin':
            applier.begin(e.commitLsn, e.xid);
            inTxn = true;
            txnChanges = 0;
            return;
          case 'relation': {
            const now = shapeOf(e.columns);
            if (o.shapes.has(e.table) && o.shapes.get(e.table) !== now) throw Object.assign(ddlError(e.table, o.shapes.get(e.table), now), { clean: txnChanges === 0 });
            return;
          }
          case 'insert':
          case 'update':
          case 'delete': {
            if (o.takes && !o.takes(e.table)) {
              const skipped = tables.get(e.table);
              if (skipped) applier.note(skipped, e.kind === 'insert' ? null : e.old, e.kind === 'delete' ? null : e.row);
              return;
            }
            const t = tables.get(e.table);
            if (!t) throw notConfigured(e.table);
            if (e.kind === 'insert') await applier.insert(t, e.row);
            else if (e.kind === 'update') await applier.update(t, e.old, e.row);
            else await applier.delete(t, e.old);
            await applier.afterChange();
            txnChanges++;
            batch++;
            o.onChange?.();
            return;
          }
          case 'truncate':
            throw Object.assign(truncateError(e.tables), { clean: txnChanges === 0 });
          case 'message': {
            let m;
            try {
              m = parseControl(e.prefix, e.content);
              if (m?.kind === 'heartbeat') o.onHeartbeat?.(m.relFiles);
            } catch (err) {
              throw Object.assign(err as Error, { clean: txnChanges === 0 });
            }
            if (m?.kind === 'barrier') flushNow = true;
            if (m?.kind === 'stop') stop = flushNow = true;
            return;
          }
          case 'commit':
            inTxn = false;
            lastEnd = e.endLsn;
            lastTime = new Date(e.commitTime);
            if (flushNow || batch >= o.batchChanges || Date.now() - flushedAt >= o.batchMs) {
              const barrier = flushNow; // a cutover waits behind its fence for this one: never held back
              await flush(e.endLsn, lastTime);
              control.confirm(applier.confirmed);
              if (!barrier) await o.throttle?.wait();
            }
            return stop ? 'stop' : undefined;
        }
      },
      o.signal,
      o.onStart,
    );
  } catch (e) {
    const clean = !inTxn || (e as { clean?: boolean }).clean === true;
    if (clean && lastEnd > applier.confirmed) await flush(lastEnd, lastTime).catch(() => applier.rollback());
    else await applier.rollback();
    throw e;
  }
}

/** The stream carries a table the model does not know (the publication names only configured tables). */
const notConfigured = (table: string) =>
  blockedError(`source: the stream carries changes of table ${table}, which is not a configured table of this online migration (a partition published under its own name, or a publication changed by hand)`, {
    hint: 'start over with a fresh copy: shardctl migrate --abandon, then shardctl migrate --follow',
  });

/**
 * Heartbeats on the stream's source: a tiny transactional message every `everyMs` gives an idle
 * stream a commit to flush positions at, and `onBeat` the source's current WAL position to measure
 * the lag against. Best effort: a failed beat goes to `onError`, the stream itself reports a source
 * that is gone. `stop()` ends it; a beat in flight then schedules no other (a timer left behind
 * would keep the process alive with nothing to do).
 */
export async function startHeartbeat(
  source: Endpoint,
  applicationName: string,
  everyMs: number,
  onBeat: (sourceLsn: Lsn) => void,
  onError: (e: Error) => void = () => undefined,
  /** configured tables whose relfilenodes each heartbeat carries (rewrite.ts) */
  tables?: readonly string[],
): Promise<{ stop(): Promise<void> }> {
  const heart: pg.Client = await connect(source, { applicationName });
  let beating = true;
  let timer: NodeJS.Timeout | undefined;
  const beat = async () => {
    try {
      onBeat(await emitHeartbeat(heart, tables));
    } catch (e) {
      onError(e as Error);
    }
    if (beating) timer = setTimeout(beat, everyMs);
  };
  timer = setTimeout(beat, everyMs);
  return {
    async stop() {
      beating = false;
      clearTimeout(timer);
      await heart.end().catch(() => undefined);
    },
  };
}
