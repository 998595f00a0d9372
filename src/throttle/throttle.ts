import { withCatalogSession } from '../catalog/run.js';
import type { Config } from '../config/types.js';
import { withClient } from '../db/connect.js';
import { readThrottleFlag } from '../catalog/throttle.js';
import { replicaLag } from './replica-lag.js';
import { sourceLoad } from './source-load.js';
import { sourceEndpoint } from '../db/endpoints.js';

/** Why the copy or the apply waits: a replica too far behind, the monolith busy, or someone asked (`throttle on`). */
export type ThrottleReason = 'replica-lag' | 'source-load' | 'on-demand';

export type ThrottleEvent =
  /** `detail` is the one line a user reads after "throttled: " */
  | { type: 'throttled'; reason: ThrottleReason; detail: string }
  | { type: 'throttle-resumed'; seconds: number };

export interface ThrottleOptions {
  /** pause while a replica of a shard is more WAL behind than this; default config.health.lagBytes.warning */
  maxLagBytes?: number;
  /** pause while a replica of a shard replays this many seconds behind; default config.health.lagSeconds.warning */
  maxLagSeconds?: number;
  /** pause while more than this share of the monolith's max_connections run queries at once (source-load.ts); default config.health.connections.warning */
  maxSourceLoad?: number;
  /** how often the conditions are read (and re-read while paused); default 1000 ms */
  everyMs?: number;
  signal?: AbortSignal;
  onEvent?: (e: ThrottleEvent) => void;
}

/**
 * Slows a copy or an apply down for production's sake: `await throttle.wait()` between batches
 * returns at once while nothing is wrong (the conditions are read at most every `everyMs`), and
 * otherwise waits until the monolith is no longer loaded past its bound, the replicas of the shards the data goes to have caught up and no
 * `shardctl throttle on` is in force. It emits one 'throttled' event when it starts waiting (or
 * its reason changes) and one 'throttle-resumed' when it lets the work go on. A server that does
 * not answer is not a reason to pause (health reports it); an aborted signal ends the wait.
 *
 * @example const t = createThrottle(config, { onEvent: log }); for (const b of batches) { await t.wait(); await copy(b); }
 */
export function createThrottle(config: Config, opts: ThrottleOptions = {}): { wait(): Promise<void> } {
  const everyMs = opts.everyMs ?? 1000;
  const maxBytes = opts.maxLagBytes ?? config.health.lagBytes.warning;
  const maxSeconds = opts.maxLagSeconds ?? config.health.lagSeconds.warning;
  const maxLoad = opts.maxSourceLoad ?? config.health.connections.warning;
  let nextCheck = 0;
  let since: number | undefined;
  let last: string | undefined;
  // one check at a time: concurrent batches share it
  let running: Promise<void> | undefined;

  const reason = async (): Promise<{ reason: ThrottleReason; detail: string; key: string } | undefined> => {
    const flag = await withCatalogSession(config.catalog, readThrottleFlag).catch(() => undefined);
    if (flag) {
      const until = flag.until ? ` until ${flag.until.toISOString()}` : ' until shardctl throttle off';
      return { reason: 'on-demand', detail: `on demand (shardctl throttle on by ${flag.setBy}${until})`, key: 'on-demand' };
    }
    const load = await withClient(sourceEndpoint(config), sourceLoad).catch(() => undefined);
    if (load && load.active / load.maxConnections > maxLoad) {
      const pct = (n: number) => `${Number((n * 100).toFixed(1))}%`;
      return {
        reason: 'source-load',
        detail: `the monolith runs ${load.active} queries at once (${pct(load.active / load.maxConnections)} of max_connections ${load.maxConnections}; bound ${pct(maxLoad)})`,
        key: 'source-load',
      };
    }
    for (const s of config.shards) {
      for (const [i, url] of s.replicas.entries()) {
        const lag = await withClient({ label: `shard ${s.id}`, url: s.primary }, (p) =>
          withClient({ label: `shard ${s.id} replica ${i + 1}`, url }, (r) => replicaLag(p, r)),
        ).catch(() => undefined);
        if (lag && (lag.bytes > maxBytes || lag.seconds > maxSeconds)) {
          const why = lag.bytes > maxBytes ? `${mb(lag.bytes)} behind (bound ${mb(maxBytes)})` : `${lag.seconds.toFixed(1)} s behind (bound ${maxSeconds} s)`;
          return { reason: 'replica-lag', detail: `replica ${i + 1} of shard ${s.id} lag: ${why}${lag.paused ? ', replay paused' : ''}`, key: `${s.id}/${i}` };
        }
      }
    }
    return undefined;
  };

  const check = async (): Promise<void> => {
    for (;;) {
      const why = await reason();
      nextCheck = Date.now() + everyMs;
      if (!why) {
        if (since !== undefined) opts.onEvent?.({ type: 'throttle-resumed', seconds: (Date.now() - since) / 1000 });
        since = last = undefined;
        return;
      }
      since ??= Date.now();
      // one event per reason, not per check: the lag figure changes every time
      if (why.key !== last) opts.onEvent?.({ type: 'throttled', reason: why.reason, detail: why.detail });
      last = why.key;
      if (await pause(everyMs, opts.signal)) return;
    }
  };

  return {
    async wait() {
      if (opts.signal?.aborted || (since === undefined && Date.now() < nextCheck)) return;
      running ??= check().finally(() => (running = undefined));
      await running;
    },
  };
}

/** Sleeps `ms`; true when the signal aborted it. */
function pause(ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (aborted: boolean) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      resolve(aborted);
    };
    const onAbort = () => done(true);
    const timer = setTimeout(() => done(false), ms);
    if (signal?.aborted) return done(true);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`;
