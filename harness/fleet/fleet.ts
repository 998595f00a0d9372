// A monolith ("source") plus shard primaries s0..s{n-1}, each with optional streaming replicas,
// all started in parallel from one template, in one directory that is removed on stop.
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { getTemplate } from './template.js';
import { createReplica } from './replica.js';
import { claimDir, FLEET_PREFIX, keepDir, sweepStaleFleets, untrackDir } from './registry.js';
import { randomPassword } from './scram.js';
import { startPgServer, type PgServer } from './server.js';
import type { Fleet, FleetOptions, FleetShard, ServerHandle } from './types.js';

const SOURCE = 'source';

async function settleAll<T>(tasks: Promise<T>[]): Promise<T[]> {
  // Wait for every task even when one fails, so cleanup sees all servers that did start.
  const results = await Promise.allSettled(tasks);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return results.map((r) => (r as PromiseFulfilledResult<T>).value);
}

class FleetImpl implements Fleet {
  readonly shards: FleetShard[] = [];
  source!: ServerHandle;
  readonly #servers: ServerHandle[] = [];
  #stopped = false;
  #shardCount = 0;
  readonly #replicaCount = new Map<string, number>();

  constructor(
    readonly dir: string,
    private readonly opts: FleetOptions,
    private readonly password: string,
  ) {}

  #log(line: string): void {
    this.opts.onLog?.(line);
  }

  async startPrimary(name: string): Promise<PgServer> {
    const s = await startPgServer({
      name,
      dir: this.dir,
      database: this.opts.database ?? 'app',
      password: this.password,
      settings: { ...this.opts.settings, ...this.opts.serverSettings?.[name] },
      onLog: this.opts.onLog,
    });
    this.#servers.push(s);
    return s;
  }

  async addReplica(shard: FleetShard): Promise<ServerHandle> {
    // Names are handed out before awaiting, so concurrent calls never collide, and arrays only
    // ever hold servers that are up.
    const n = Math.max(this.#replicaCount.get(shard.id) ?? 0, shard.replicas.length) + 1;
    this.#replicaCount.set(shard.id, n);
    const name = `${shard.id}-r${n}`;
    let r: ServerHandle;
    try {
      r = await createReplica(shard.primary, { name, dir: this.dir, settings: this.opts.serverSettings?.[name], onLog: this.opts.onLog });
    } catch (e) {
      if (this.#replicaCount.get(shard.id) === n) this.#replicaCount.set(shard.id, n - 1);
      throw e;
    }
    this.#servers.push(r);
    shard.replicas.push(r);
    return r;
  }

  async addShard(opts: { replicas?: number } = {}): Promise<FleetShard> {
    const id = `s${this.#shardCount++}`;
    const shard: FleetShard = { id, primary: await this.startPrimary(id), replicas: [] };
    this.shards.push(shard);
    // Keep config order s0, s1, ... even if concurrent adds finish out of order.
    this.shards.sort((a, b) => Number(a.id.slice(1)) - Number(b.id.slice(1)));
    for (let i = 0; i < (opts.replicas ?? 0); i++) await this.addReplica(shard);
    return shard;
  }

  async stop(opts: { keep?: boolean } = {}): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (opts.keep) {
      keepDir(this.dir, this.#servers.map((s) => s.dataDir));
      this.#log(`fleet kept running in ${this.dir}`);
      return;
    }
    // The directory is deleted right after, so a clean shutdown would buy nothing: immediate.
    const results = await Promise.allSettled(this.#servers.map((s) => s.stop('immediate')));
    await fsp.rm(this.dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
    untrackDir(this.dir);
    this.#log(`fleet stopped, ${this.dir} removed`);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }
}

export async function startFleet(opts: FleetOptions): Promise<Fleet> {
  if (!Number.isInteger(opts.shards) || opts.shards < 0) throw new Error(`shards must be a non-negative integer, got ${opts.shards}`);
  const t0 = Date.now();
  const swept = sweepStaleFleets();
  if (swept.length) opts.onLog?.(`[fleet] removed ${swept.length} stale fleet dir(s): ${swept.join(', ')}`);
  let dir: string;
  if (opts.dir) {
    dir = path.resolve(opts.dir); // if the server user cannot reach it, handOver() says so
    await fsp.mkdir(dir, { recursive: true });
  } else {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), FLEET_PREFIX));
    await fsp.chmod(dir, 0o755); // mkdtemp makes 0700; the server user must traverse it
  }
  await claimDir(dir);
  const fleet = new FleetImpl(dir, opts, opts.password ?? randomPassword());
  try {
    const tpl = await getTemplate();
    opts.onLog?.(`[fleet] template ready (initdb ${tpl.initdbMs} ms)`);
    const [source] = await settleAll<ServerHandle | FleetShard>([
      fleet.startPrimary(SOURCE),
      ...Array.from({ length: opts.shards }, () => fleet.addShard({ replicas: opts.replicas ?? 0 })),
    ]);
    fleet.source = source as ServerHandle;
    opts.onLog?.(`[fleet] ${1 + opts.shards} primaries and ${opts.shards * (opts.replicas ?? 0)} replicas up in ${Date.now() - t0} ms (${dir})`);
    return fleet;
  } catch (e) {
    await fleet.stop().catch(() => {});
    throw e;
  }
}
