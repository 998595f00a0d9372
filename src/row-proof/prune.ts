import type pg from 'pg';
import { blockedError } from '../errors.js';
import { columnType, type Model, type TableModel } from '../tables/model.js';
import { topologyRouter } from '../routing/router.js';
import { rowRouter } from '../stream/route.js';
import { compareRows } from './changed.js';
import { printedKey } from './recorded.js';

/**
 * Proving recorded rows while a follower runs, and removing their records, so that the fence at the
 * end (cutover's, rollback's) re-proves only what changed since the last proof. One machinery for
 * both directions; each says why the argument holds for it (online/prover.ts forward,
 * rollback/prove-back.ts in reverse). The terms:
 *  - the record: follow_dirty rows under `slots` on the `records` servers, each written by the
 *    follower in the transaction that applied the row, with the id of the transaction it applied
 *    (xid; none: a write that was not the follower's, stream/foreign-writes.ts, never pruned);
 *  - the truths: the servers whose committed transactions the follower applies (forward: the
 *    monolith; in reverse: every shard);
 *  - the proof compares each recorded row between the monolith and every shard (changed.ts): the
 *    row is exactly where it belongs with the monolith's content, or on neither side.
 * A round, on a few thousand recorded rows:
 *  1. on every record server, in one READ COMMITTED transaction each, locks the candidate records
 *     (FOR UPDATE SKIP LOCKED: never waits for the follower; a record it holds is left for a later
 *     round). Until the round commits, a locked row's content on that server cannot change by the
 *     follower: every follower write of a row updates its record in the same transaction, so it waits;
 *  2. notes N, each truth's next transaction id, and waits (briefly; else the round keeps every
 *     record) until no transaction older than N is running there: every snapshot taken from then on
 *     sees every truth transaction the locked rows' content reflects (the follower applies a
 *     transaction only after its server logged its commit, and this is after the locks);
 *  3. reads the rows on every shard and on the monolith (one statement per server and chunk: one
 *     snapshot each); compares them;
 *  4. deletes the proven rows' locked records and commits.
 * Why a proven record may go: the snapshots of the truths see every transaction the followed copy
 * of the row reflects (2). If one shows a later change of the row, that change is not yet applied,
 * and the follower records the row again when it applies it (it updates the record: it waits for
 * the round's lock, then records the row after the delete). Otherwise the truth's row is the
 * snapshot's, and the followed copy equals it. Any later change reaches the follower before the
 * fence's barrier and records the row; a write by anyone else on the followed side is recorded by a
 * trigger with no transaction and never pruned. This asks nothing of the row's own xmin or of the
 * transaction named in the record: a row written inside a SAVEPOINT, a `via` row moved along by its
 * parent and a deleted row are proven alike, and the race of a commit decoded and applied before the
 * truth's snapshots see it is closed by step 2. The fence takes PROVE_LOCK exclusively before fencing
 * (holdProver): no round holds the follower back meanwhile.
 */
export const PROVE_LOCK = 0x5368_6172_5072n; // "SharPr"

export interface ProverOptions {
  /** records looked at per round and record server */
  batch?: number;
  /** pause between rounds that found little to do, ms */
  idleMs?: number;
  throttle?: { wait(): Promise<void> };
  onWarning?: (message: string) => void;
}

export interface Prover {
  /** records removed since it started */
  proven(): number;
  stop(): Promise<void>;
}

/** The servers of a proof (see above), the prover's own sessions: it ends them when it stops. */
export interface ProofSides {
  /** the monolith, read for the proof; PROVE_LOCK is taken there */
  source: pg.Client;
  shards: ReadonlyMap<string, pg.Client>;
  /** the servers holding the record, by name; may be clients of `shards` (a round's transaction there reads through it) */
  records: ReadonlyMap<string, pg.Client>;
  /** the record's keys (follow_dirty.slot) the prover proves */
  slots: readonly string[];
  /** the servers whose transactions the follower applies (step 2) */
  truths: readonly pg.Client[];
  /** the catalog's placements the proof routes by (no unit moves while a follower runs) */
  placements: ReadonlyMap<string, string>;
}

/** Runs rounds (see above) until stopped; a failed round is a warning, its records stay for the fence. */
export function runProver(model: Model, sides: ProofSides, opts: ProverOptions = {}): Prover {
  const batch = opts.batch ?? 5000;
  const idleMs = opts.idleMs ?? 1000;
  let stopped = false;
  let proven = 0;
  let wake: (() => void) | undefined;
  const sleep = (ms: number) => new Promise<void>((r) => {
    const t = setTimeout(r, ms);
    wake = () => (clearTimeout(t), r());
  });
  const router = rowRouter(model, topologyRouter(model.config), async () => ({ kind: 'unknown', why: 'not asked' }), (u) => sides.placements.get(u));
  const loop = (async () => {
    while (!stopped) {
      let n = 0;
      try {
        await opts.throttle?.wait();
        if (stopped) break;
        n = await proveRound(model, router, sides, batch);
        proven += n;
      } catch (e) {
        opts.onWarning?.(`proving changed rows while following failed (the fence will check them): ${(e as Error).message}`);
        await sleep(idleMs * 5);
      }
      if (n < batch / 2 && !stopped) await sleep(idleMs);
    }
  })();
  return {
    proven: () => proven,
    async stop() {
      stopped = true;
      wake?.();
      await loop;
      await endSides(sides);
    },
  };
}

/** Ends every session of `sides` (each once). */
export async function endSides(sides: Pick<ProofSides, 'source' | 'shards' | 'records' | 'truths'>): Promise<void> {
  const all = new Set([sides.source, ...sides.shards.values(), ...sides.records.values(), ...sides.truths]);
  await Promise.all([...all].map((c) => c.end().catch(() => undefined)));
}

/**
 * The tables whose records the prover proves: those with a primary key. A keyless table's records
 * stay for the fence, which counts each recorded value on both sides (row-proof/keyless.ts): a row
 * tampered after its value was proven, its old value recorded again by the foreign-writes trigger
 * (stream/foreign-writes.ts), is found by that count and not by a keyed lookup.
 */
export function provedTables(model: Model): string[] {
  return model.tables.filter((t) => t.info.primaryKey.length > 0).map((t) => t.name);
}

/**
 * Takes the prover's lock exclusively for the fence's session on the monolith: waits for the round
 * in progress, at most `timeoutMs`. A queued request, not a polling one: the prover takes the lock
 * again at once after a full round, and its next try fails behind the queued request (PostgreSQL
 * grants no lock that conflicts with one already waiting), so a backlog cannot starve the fence.
 * `retry` names the command to run again when the round did not end in time (nothing was fenced).
 */
export async function holdProver(src: pg.ClientBase, timeoutMs: number, retry: string): Promise<void> {
  await src.query(`SET lock_timeout = ${Math.max(1, Math.round(timeoutMs))}`);
  try {
    await src.query('SELECT pg_advisory_lock($1)', [String(PROVE_LOCK)]);
  } catch (e) {
    if ((e as { code?: string }).code !== '55P03') throw e;
    throw blockedError(`the follower's prover did not finish its round within ${timeoutMs / 1000}s; nothing was fenced`, { hint: `run ${retry} again` });
  } finally {
    await src.query('RESET lock_timeout');
  }
}

/** How long a round waits for a truth's older transactions to end (2, above) before it gives up, keeping its records. */
const SEE_WAIT_MS = 500;

/** A candidate record: where it is kept, under which key, and the row it names. */
interface Candidate {
  slot: string;
  tbl: string;
  key: string;
}
const recordId = (x: Candidate) => `${x.slot}\0${x.tbl}\0${x.key}`;

/** One round (see above): returns how many records it removed. */
async function proveRound(model: Model, router: ReturnType<typeof rowRouter>, sides: ProofSides, batch: number): Promise<number> {
  const { source, records, slots } = sides;
  if (!(await source.query('SELECT pg_try_advisory_lock_shared($1) AS ok', [String(PROVE_LOCK)])).rows[0].ok) return 0; // a fence is on
  const open: pg.Client[] = [];
  try {
    // candidates: records the follower wrote (with a transaction), of the tables it proves, from every record server
    const names = provedTables(model);
    const candidates = new Map<string, Candidate>();
    for (const c of records.values()) {
      const r = await c.query('SELECT slot, tbl, key FROM shardctl.follow_dirty WHERE slot = ANY($1::text[]) AND xid IS NOT NULL AND tbl = ANY($2::text[]) LIMIT $3', [slots, names, batch]);
      for (const x of r.rows as Candidate[]) candidates.set(recordId(x), x);
    }
    if (!candidates.size) return 0;
    const all = [...candidates.values()];
    // a truth's transaction running long (a big UPDATE) would make step 2 wait with the records
    // locked, holding the follower back: its end is awaited first, holding nothing
    if (!(await truthsSeen(sides.truths))) return 0;
    // 1. lock them where they are recorded (per record server: the records it holds)
    const locked = new Map<string, Set<string>>();
    for (const [id, c] of records) {
      await c.query('BEGIN');
      open.push(c);
      const r = await c.query(
        `SELECT slot, tbl, key FROM shardctl.follow_dirty
          WHERE xid IS NOT NULL AND (slot, tbl, key) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))
          FOR UPDATE SKIP LOCKED`,
        [all.map((x) => x.slot), all.map((x) => x.tbl), all.map((x) => x.key)],
      );
      locked.set(id, new Set((r.rows as Candidate[]).map(recordId)));
    }
    // 2. from here on, the truths' snapshots see everything the locked rows reflect
    if (!(await truthsSeen(sides.truths))) return 0;
    // 3. compare, table by table (a row recorded under several keys is compared once)
    const proven = new Set<string>();
    const byTable = new Map<string, Set<string>>();
    for (const x of all) byTable.set(x.tbl, (byTable.get(x.tbl) ?? new Set<string>()).add(x.key));
    for (const [name, jsonKeys] of byTable) {
      const equal = await equalKeyed(model, router, model.table(name), [...jsonKeys], source, sides.shards);
      for (const k of equal) proven.add(`${name}\0${k}`);
    }
    // 4. remove the proven records this round holds
    let removed = 0;
    for (const [id, c] of records) {
      const mine = all.filter((x) => locked.get(id)!.has(recordId(x)) && proven.has(`${x.tbl}\0${x.key}`));
      if (mine.length) {
        const r = await c.query('DELETE FROM shardctl.follow_dirty WHERE (slot, tbl, key) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))', [
          mine.map((x) => x.slot),
          mine.map((x) => x.tbl),
          mine.map((x) => x.key),
        ]);
        removed += r.rowCount ?? 0;
      }
      await c.query('COMMIT');
      open.splice(open.indexOf(c), 1);
    }
    return removed;
  } finally {
    for (const c of open) await c.query('ROLLBACK').catch(() => undefined);
    await source.query('SELECT pg_advisory_unlock_shared($1)', [String(PROVE_LOCK)]).catch(() => undefined);
  }
}

/** Step 2 (see above) on every truth at once: whether all of them passed it. */
async function truthsSeen(truths: readonly pg.ClientBase[]): Promise<boolean> {
  return (await Promise.all(truths.map(olderTransactionsEnded))).every(Boolean);
}

/**
 * Step 2 (see above): notes the server's next transaction id and waits, at most SEE_WAIT_MS, until
 * no older transaction is running (the oldest running one, pg_current_snapshot()'s xmin, is not
 * older). Snapshots taken afterwards see all of them: no transaction that old can start again.
 */
async function olderTransactionsEnded(c: pg.ClientBase): Promise<boolean> {
  const next = (await c.query('SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS n')).rows[0].n as string;
  const until = Date.now() + SEE_WAIT_MS;
  for (;;) {
    if ((await c.query('SELECT pg_snapshot_xmin(pg_current_snapshot()) >= $1::xid8 AS ok', [next])).rows[0].ok) return true;
    if (Date.now() > until) return false;
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The recorded keys (JSON text) of a keyed table whose rows are exactly where they belong, or on neither side. */
async function equalKeyed(model: Model, router: ReturnType<typeof rowRouter>, t: TableModel, jsonKeys: readonly string[], source: pg.Client, shards: ReadonlyMap<string, pg.Client>): Promise<string[]> {
  const keys = jsonKeys.map((k) => JSON.parse(k) as string[]);
  const texts = await canonicalKeys(source, t, keys);
  const compared = await compareRows(model, router, t, keys, source, shards);
  return jsonKeys.filter((_, i) => !compared.get(texts[i]!)?.problems.length);
}

/** Each key as PostgreSQL prints it (`(k1, k2)`), in the order given: a key the follower recorded in another spelling still matches its row. */
async function canonicalKeys(source: pg.ClientBase, t: TableModel, keys: readonly string[][]): Promise<string[]> {
  const pk = t.info.primaryKey;
  const arrays = pk.map((k, i) => `$${i + 1}::text[]::${columnType(t.info, k)}[]`).join(', ');
  const cols = pk.map((_, i) => `x.c${i}::text AS k${i}`).join(', ');
  const r = await source.query(`SELECT ${cols} FROM unnest(${arrays}) WITH ORDINALITY AS x(${pk.map((_, i) => `c${i}`).join(', ')}, o) ORDER BY o`, pk.map((_, i) => keys.map((k) => k[i]!)));
  return r.rows.map((x) => printedKey(pk.map((_, i) => x[`k${i}`] as string)));
}
