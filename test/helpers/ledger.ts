import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import pg from 'pg';
import { sql } from './fleet.js';
import { jumpHashReference } from './jump-reference.js';

/**
 * The adversarial matrix's oracle: a writer that records every write the database acknowledged,
 * and a checker that proves a fleet holds exactly that state with its own SQL and its own routing
 * (md5 → jump from the paper, pins), never the engine's functions.
 *
 * The ledger table: `ledger (bid int, k bigint PRIMARY KEY, v bigint)`, sharded by `bid`.
 */
export const LEDGER_DDL = 'CREATE TABLE ledger (bid integer NOT NULL, k bigint PRIMARY KEY, v bigint NOT NULL)';

/** A key's acknowledged state: its tenant and value, or deleted. */
interface KeyState {
  bid: number;
  v: bigint | null;
}

export interface WriterStats {
  commits: number[];
  refused: number;
  /** refusals by message class, to see which mechanism refused */
  reasons: Map<string, number>;
}

/**
 * Writes inserts, updates and deletes of ledger rows, each a one-statement transaction on the
 * server `target(bid)` names at that moment. A write the server answered with success is
 * acknowledged; an error answer means it did not happen; a lost answer (the connection broke) leaves
 * the key in doubt: either state is then accepted for it, but no other.
 */
export class LedgerWriter {
  readonly acked = new Map<bigint, KeyState>();
  readonly doubt = new Map<bigint, KeyState[]>();
  readonly stats: WriterStats = { commits: [], refused: 0, reasons: new Map() };
  #next: bigint;
  #stop = false;
  #done: Promise<void> | undefined;
  readonly #clients = new Map<string, pg.Client>();
  #seed = 12345;

  constructor(
    private readonly target: (bid: number) => Promise<string> | string,
    private readonly tenants: readonly number[],
    opts: { firstKey?: bigint } = {},
  ) {
    this.#next = opts.firstKey ?? 1_000_000n;
  }

  /** Seeds the oracle with rows already on the monolith (the initial load). */
  static async fromTable(url: string, target: (bid: number) => Promise<string> | string, tenants: readonly number[]): Promise<LedgerWriter> {
    const rows = await sql(url, 'SELECT bid, k::text, v::text FROM ledger');
    let max = 0n;
    const w = new LedgerWriter(target, tenants);
    for (const r of rows) {
      const k = BigInt(r.k);
      w.acked.set(k, { bid: r.bid, v: BigInt(r.v) });
      if (k > max) max = k;
    }
    w.#next = max + 1n;
    return w;
  }

  start(pauseMs = 2): this {
    this.#stop = false;
    this.#done = (async () => {
      while (!this.#stop) {
        await this.step();
        await sleep(pauseMs);
      }
    })();
    return this;
  }

  /** Stops writing until `start` (the checker reads a quiet fleet: a write between its reads would be a false alarm). */
  async pause(): Promise<void> {
    this.#stop = true;
    await this.#done;
  }

  async stop(): Promise<WriterStats> {
    this.#stop = true;
    await this.#done;
    await Promise.all([...this.#clients.values()].map((c) => c.end().catch(() => undefined)));
    this.#clients.clear();
    return this.stats;
  }

  /** One write: an insert, an update of a live key or a delete of one, chosen at random. */
  async step(): Promise<void> {
    const live = [...this.acked].filter(([, s]) => s.v !== null);
    const dice = this.#random(10);
    if (dice < 5 || live.length < 10) {
      const k = this.#next++;
      const bid = this.tenants[this.#random(this.tenants.length)]!;
      const v = BigInt(this.#random(1_000_000));
      await this.#write(k, { bid, v }, 'INSERT INTO ledger (bid, k, v) VALUES ($1, $2, $3)', [bid, k.toString(), v.toString()]);
    } else {
      const [k, s] = live[this.#random(live.length)]!;
      if (dice < 8) {
        const v = BigInt(this.#random(1_000_000));
        await this.#write(k, { bid: s.bid, v }, 'UPDATE ledger SET v = $2 WHERE k = $1', [k.toString(), v.toString()], true);
      } else {
        await this.#write(k, { bid: s.bid, v: null }, 'DELETE FROM ledger WHERE k = $1', [k.toString()], true);
      }
    }
  }

  async #write(k: bigint, next: KeyState, text: string, params: unknown[], mustHit = false): Promise<void> {
    if (this.doubt.has(k)) return; // leave keys in doubt alone: one unknown outcome per key at most
    let url: string;
    try {
      url = await this.target(next.bid);
    } catch (e) {
      this.#refuse(e);
      return;
    }
    let c: pg.Client;
    try {
      c = await this.#client(url);
    } catch (e) {
      this.#refuse(e);
      return;
    }
    try {
      const r = await c.query(text, params);
      if (mustHit && r.rowCount !== 1) {
        // the row is not where the route says: a stranded or misplaced write, never acceptable
        throw new Error(`ledger key ${k} (tenant ${next.bid}): ${text.split(' ')[0]} hit ${r.rowCount} rows on ${redact(url)}`);
      }
      this.acked.set(k, next);
      this.stats.commits.push(Date.now());
    } catch (e) {
      const err = e as Error & { code?: string };
      if (err.message.startsWith('ledger key')) throw err;
      if (err.code) {
        this.#refuse(err); // the server answered: it did not happen
      } else {
        // no answer: the outcome is unknown
        this.doubt.set(k, [this.acked.get(k) ?? { bid: next.bid, v: null }, next]);
        this.#drop(url);
        this.#refuse(err);
      }
    }
  }

  #refuse(e: unknown): void {
    this.stats.refused++;
    const m = (e as Error).message ?? String(e);
    const reason = /being moved/.test(m) ? 'moving' : /has moved/.test(m) ? 'moved' : /serializ/.test(m) ? 'serialization' : /fence|refused|read-only/.test(m) ? 'fenced' : 'other';
    this.stats.reasons.set(reason, (this.stats.reasons.get(reason) ?? 0) + 1);
  }

  async #client(url: string): Promise<pg.Client> {
    let c = this.#clients.get(url);
    if (!c) {
      c = new pg.Client({ connectionString: url });
      c.on('error', () => this.#drop(url));
      await c.connect();
      this.#clients.set(url, c);
    }
    return c;
  }

  #drop(url: string): void {
    const c = this.#clients.get(url);
    this.#clients.delete(url);
    c?.end().catch(() => undefined);
  }

  #random(n: number): number {
    this.#seed = (this.#seed * 48271) % 2147483647;
    return this.#seed % n;
  }
}

/** The shard a tenant belongs to, from first principles: md5 → big-endian uint64 → jump; pins first. */
export function ownerOf(bid: number, shards: readonly string[], pins: Record<string, string> = {}): string {
  const pinned = pins[String(bid)];
  if (pinned) return pinned;
  const key = createHash('md5').update(String(bid)).digest().readBigUInt64BE(0);
  return shards[jumpHashReference(key, shards.length)]!;
}

/**
 * Proves the fleet holds exactly the acknowledged ledger: every live key on its owner's shard once,
 * with its acknowledged value; no deleted key anywhere; no key on a shard that does not own it; no
 * key the writer never wrote. Keys in doubt may hold either of their two states.
 */
export async function assertLedger(
  shards: readonly { id: string; url: string }[],
  writer: LedgerWriter,
  owner: (bid: number) => string,
): Promise<void> {
  const found = new Map<bigint, { shard: string; bid: number; v: bigint }[]>();
  for (const s of shards) {
    for (const r of await sql(s.url, 'SELECT bid, k::text, v::text FROM ledger')) {
      const k = BigInt(r.k);
      const list = found.get(k) ?? found.set(k, []).get(k)!;
      list.push({ shard: s.id, bid: r.bid, v: BigInt(r.v) });
    }
  }
  const problems: string[] = [];
  const keys = new Set([...writer.acked.keys(), ...found.keys(), ...writer.doubt.keys()]);
  for (const k of keys) {
    const rows = found.get(k) ?? [];
    const allowed = writer.doubt.get(k) ?? [writer.acked.get(k) ?? { bid: -1, v: null }];
    const ok = allowed.some((want) =>
      want.v === null ? rows.length === 0 : rows.length === 1 && rows[0]!.v === want.v && rows[0]!.bid === want.bid && rows[0]!.shard === owner(want.bid),
    );
    if (ok) continue;
    const want = allowed.map((a) => (a.v === null ? 'absent' : `v=${a.v} on ${owner(a.bid)}`)).join(' or ');
    const got = rows.length ? rows.map((r) => `v=${r.v} (tenant ${r.bid}) on ${r.shard}`).join(', ') : 'absent';
    problems.push(`key ${k}: acknowledged ${want}, found ${got}`);
  }
  assert.deepEqual(problems.slice(0, 20), [], `${problems.length} ledger key(s) differ from the acknowledged writes`);
}

/** The longest pause between two acknowledged commits, in ms, within [from, to]. */
export function longestGap(commits: readonly number[], from = -Infinity, to = Infinity): number {
  const t = commits.filter((c) => c >= from && c <= to);
  let gap = 0;
  for (let i = 1; i < t.length; i++) gap = Math.max(gap, t[i]! - t[i - 1]!);
  return gap;
}

const redact = (url: string) => url.replace(/:[^:@/]*@/, ':***@');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
