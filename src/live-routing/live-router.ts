import type pg from 'pg';
import type { Config } from '../config/types.js';
import { connect } from '../db/connect.js';
import { readTopology, type CatalogTopology } from '../catalog/read-topology.js';
import { TOPOLOGY_CHANNEL } from '../catalog/topology-sql.js';
import { topologyRouter, type Router } from '../routing/router.js';

export interface CatalogRouterOptions {
  /** the catalog database's connection string */
  catalog: string;
  /** reconnect backoff after the catalog connection drops: first delay and cap (default 100 ms, 30 s) */
  backoffMs?: { initial?: number; max?: number };
  /** a reload or reconnect failed (routing goes on with the last whole topology meanwhile) */
  onError?: (e: Error) => void;
}

/** A router following the catalog: every lookup uses one whole topology version, swapped atomically. */
export interface LiveRouter extends Router {
  /** the topology version routed with now */
  readonly version: number;
  /**
   * In that version: the units routed to the shard holding their rows until their move flips
   * (unit → { shard: where its rows are, wanted: where its move goes }); every other unit routes by
   * the strategy.
   */
  readonly held: CatalogTopology['held'];
  /** whether the LISTEN connection to the catalog is up (false: routing on the last version seen) */
  readonly connected: boolean;
  /** calls `fn` with each new version once it routes with it; returns the unsubscribe function */
  onChange(fn: (version: number) => void): () => void;
  /** resolves once routing uses `version` or a later one */
  waitForVersion(version: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * Loads the topology from the catalog and follows it: LISTEN on `shardctl_topology` (NOTIFY carries
 * each new version), reload in one snapshot, swap. When the connection drops it reconnects with
 * exponential backoff and reloads (catching up on anything missed); until then it keeps routing
 * with the last complete topology, never a half-applied one.
 *
 * Routing follows the data: a unit whose move is pending routes to the shard holding its rows (the
 * catalog's held route) until its move flips; the flip's version moves that unit alone.
 *
 * @example
 *   const router = await createRouter({ catalog: 'postgres://app@catalog:5432/pos' });
 *   router.shardFor(42); // follows `shardctl pin … --apply`, add-shard, failover without a redeploy
 */
export async function createCatalogRouter(opts: CatalogRouterOptions): Promise<LiveRouter> {
  const live = new Follower(opts);
  await live.start();
  return live.router();
}

class Follower {
  private client?: pg.Client;
  private current!: { version: number; router: Router; held: CatalogTopology['held'] };
  private closed = false;
  private attempt = 0;
  private timer?: NodeJS.Timeout;
  private reloading: Promise<void> = Promise.resolve();
  /** a reload is queued and has not begun reading */
  private waiting = false;
  private readonly listeners = new Set<(v: number) => void>();

  constructor(private readonly opts: CatalogRouterOptions) {}

  async start(): Promise<void> {
    await this.connectAndLoad(); // the first load's failure is the caller's (nothing to route with yet)
  }

  private async connectAndLoad(): Promise<void> {
    const client = await connect({ label: 'catalog', url: this.opts.catalog }, { applicationName: 'shardctl router' });
    // Listening before reading: a change committed after the read's snapshot arrives as a notification.
    client.on('notification', (n) => {
      if (n.channel === TOPOLOGY_CHANNEL && (!this.current || Number(n.payload) > this.current.version)) this.reload(client);
    });
    try {
      await client.query(`LISTEN ${TOPOLOGY_CHANNEL}`);
      this.client = client;
      await this.load(client);
    } catch (e) {
      this.client = undefined;
      await client.end().catch(() => undefined);
      throw e;
    }
    const lost = () => this.lost(client);
    client.on('error', lost);
    client.on('end', lost);
    this.attempt = 0;
  }

  /** One reload at a time, in order, so an older snapshot can never replace a newer one. */
  private load(client: pg.Client): Promise<void> {
    const next = this.reloading.then(async () => {
      this.waiting = false;
      if (this.closed || client !== this.client) return;
      this.swap(await readTopology(client));
    });
    this.reloading = next.catch(() => undefined);
    return next;
  }

  /**
   * A notification: reload, unless a reload that has not started reading yet is queued already (it
   * will read this version or a later one). A rebalance flips units one by one, each flip its own
   * version: a burst of them costs a few reloads, not one each.
   */
  private reload(client: pg.Client): void {
    if (this.waiting) return;
    this.waiting = true;
    this.load(client).catch((e: Error) => this.opts.onError?.(e));
  }

  private swap(t: CatalogTopology): void {
    if (this.current && t.version <= this.current.version) return;
    this.current = { version: t.version, router: topologyRouter(t, t.held), held: t.held };
    for (const fn of this.listeners) fn(t.version);
  }

  private lost(client: pg.Client): void {
    if (this.client !== client) return; // already handled
    this.client = undefined;
    client.end().catch(() => undefined);
    if (!this.closed) this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    const initial = this.opts.backoffMs?.initial ?? 100;
    const max = this.opts.backoffMs?.max ?? 30_000;
    const delay = Math.min(max, initial * 2 ** this.attempt++) * (0.5 + Math.random() / 2); // jitter: routers do not stampede
    this.timer = setTimeout(() => {
      this.connectAndLoad().catch((e: Error) => {
        this.opts.onError?.(e);
        if (!this.closed) this.scheduleReconnect();
      });
    }, delay);
    this.timer.unref?.();
  }

  router(): LiveRouter {
    const self = this;
    const r = () => this.current.router;
    return {
      get shards() {
        return r().shards;
      },
      get version() {
        return self.current.version;
      },
      get held() {
        return self.current.held;
      },
      get connected() {
        return self.client !== undefined;
      },
      shardFor: (key) => r().shardFor(key),
      shardForLocation: (lat, lng) => r().shardForLocation(lat, lng),
      shardForCell: (cell) => r().shardForCell(cell),
      cellFor: (lat, lng) => r().cellFor(lat, lng),
      shardForUnit: (unit) => r().shardForUnit(unit),
      onChange: (fn) => {
        this.listeners.add(fn);
        return () => this.listeners.delete(fn);
      },
      waitForVersion: (version, timeoutMs = 10_000) => this.waitFor(version, timeoutMs),
      close: () => this.close(),
    };
  }

  private waitFor(version: number, timeoutMs: number): Promise<void> {
    if (this.current.version >= version) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error(`topology version ${version} not seen within ${timeoutMs} ms (routing with ${this.current.version})`));
      }, timeoutMs);
      const fn = (v: number) => {
        if (v < version) return;
        clearTimeout(timer);
        off();
        resolve();
      };
      const off = () => this.listeners.delete(fn);
      this.listeners.add(fn);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    const c = this.client;
    this.client = undefined;
    await c?.end().catch(() => undefined);
  }
}

/** `createRouter(config)` as before; `createRouter({ catalog })` follows the catalog's live topology. */
export function createRouter(config: Pick<Config, 'strategy' | 'shards'>): Router;
export function createRouter(source: CatalogRouterOptions): Promise<LiveRouter>;
export function createRouter(arg: Pick<Config, 'strategy' | 'shards'> | CatalogRouterOptions): Router | Promise<LiveRouter> {
  return 'strategy' in arg ? topologyRouter(arg) : createCatalogRouter(arg);
}
