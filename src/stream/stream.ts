import lr from 'pg-logical-replication';
import type { Endpoint } from '../db/connect.js';
import { TextPgoutput, toEvent, type StreamEvent } from './decoder.js';
import { lsnText, type Lsn } from '../db/lsn.js';
import type { StreamNames } from './names.js';
import { replicationConfig } from './slot.js';

/** How often a standby status goes to the source whatever the stream is doing (well below any sane wal_sender_timeout). */
const KEEPALIVE_MS = 1000;

export interface StreamControl {
  /** tells the source every transaction ending at or before `lsn` is durably applied (the slot may free its WAL) */
  confirm(lsn: Lsn): void;
}

/**
 * Streams the slot's changes from `start` through `handle`, one event at a time: the next message
 * is read only when the handler's promise settles (backpressure: a slow shard slows the stream, the
 * slot keeps the rest on the source). Only what the handler confirms is acknowledged to the source;
 * keepalive requests are answered with that same position. Resolves when the handler returns 'stop';
 * rejects with the handler's error, a stream error, or the abort reason — always after the
 * handler in progress has finished, so no statement runs after this returns.
 */
export async function runStream(
  source: Endpoint,
  names: StreamNames,
  start: Lsn,
  handle: (e: StreamEvent, control: StreamControl) => Promise<'stop' | void>,
  signal?: AbortSignal,
  /** called once the source streams (the slot has its consumer) */
  onStart?: () => void,
): Promise<void> {
  const service = new lr.LogicalReplicationService(await replicationConfig(source), {
    // never acknowledge on a timer: that would confirm what was received, not what every shard committed
    acknowledge: { auto: false, timeoutSeconds: 0 },
    flowControl: { enabled: true },
  });
  const plugin = new TextPgoutput({ protoVersion: 1, publicationNames: [names.publication], messages: true });
  let confirmed = start;
  // the library reports position + 1 (the next byte wanted); ours is the end of the last applied transaction
  const ack = () => void service.acknowledge(lsnText((confirmed > 0n ? confirmed - 1n : 0n) as Lsn)).catch(() => undefined);
  const control: StreamControl = {
    confirm(lsn) {
      if (lsn > confirmed) confirmed = lsn;
      ack();
    },
  };
  return new Promise<void>((resolve, reject) => {
    let done = false;
    // While the handler applies a long source transaction the stream is paused (flow control) and the
    // walsender's keepalive requests go unread: without a status now and then it ends the connection
    // after wal_sender_timeout, and every restart would replay the same transaction from its start.
    // The status repeats the confirmed position; it never acknowledges more.
    const alive = setInterval(() => !done && ack(), KEEPALIVE_MS);
    let busy: Promise<unknown> = Promise.resolve();
    const finish = async (err: unknown, fromHandler: boolean) => {
      if (done) return;
      done = true;
      clearInterval(alive);
      if (!fromHandler) await busy.catch(() => undefined);
      signal?.removeEventListener('abort', onAbort);
      await service.destroy().catch(() => undefined);
      if (err) reject(err);
      else resolve();
    };
    const onAbort = () => void finish(signal!.reason ?? new Error('aborted'), false);
    service.on('data', (_lsn: string, msg: Parameters<typeof toEvent>[0]) => {
      const p = (async () => {
        if (done) return;
        try {
          const e = toEvent(msg);
          if (e && (await handle(e, control)) === 'stop') await finish(undefined, true);
        } catch (err) {
          await finish(err, true);
        }
      })();
      busy = p;
      return p;
    });
    service.on('start', () => onStart?.());
    service.on('heartbeat', (_lsn: string, _time: number, reply: boolean) => {
      if (reply && !done) ack();
    });
    service.on('error', (err: unknown) => void finish(err, false));
    if (signal?.aborted) return void onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    service
      .subscribe(plugin, names.slot, lsnText(start))
      .then(() => finish(new Error('the source ended the replication stream'), false), (err: unknown) => finish(err, false));
  });
}
