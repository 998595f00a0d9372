import type pg from 'pg';
import type { Config } from '../config/types.js';
import { connect } from '../db/connect.js';
import { shardEndpoint, sourceEndpoint } from '../db/endpoints.js';
import { columnType, type Model, type TableModel } from '../tables/model.js';
import { topologyRouter } from '../routing/router.js';
import { rowRouter } from '../stream/route.js';
import { compareRows } from '../row-proof/changed.js';
import { printedKey } from '../row-proof/recorded.js';
import { Catalog } from '../catalog/catalog.js';
import { readPlacements } from '../catalog/placements.js';

/**
 * While following, proves the rows recorded in follow_dirty and removes them from the record, so
 * that cutover's fence re-proves only what changed since the last proof (changed.ts), not every
 * row changed since the copy. A round, on a few thousand recorded rows:
 *  1. on every shard, in one READ COMMITTED transaction each, locks the records of the candidate
 *     rows (FOR UPDATE SKIP LOCKED: never waits for the follower; a record it holds is left for a
 *     later round). Until the round commits, a locked row's content on that shard cannot change:
 *     every follower write of a row updates its record in the same shard transaction, so it waits;
 *  2. notes N, the monolith's next transaction id, and waits (briefly; else the round keeps every
 *     record) until no transaction older than N is running there: every snapshot taken from then on
 *     sees every source transaction the locked rows' content reflects (the follower applies a source
 *     transaction only after the monolith logged its commit, and this is after the locks);
 *  3. reads the rows on every shard and on the monolith (one statement: one snapshot S); a row is
 *     proven when it is exactly where it belongs with the monolith's content (changed.ts), or on
 *     neither side (rows of tables without a primary key are left to cutover: see provedTables);
 *  4. deletes the proven rows' locked records and commits.
 * Why a proven record may go: S sees every source transaction the shard's copy of the row reflects
 * (2). If S shows a later change of the row, that change is not yet applied to the shard, and the
 * follower records the row again when it applies it (it updates the record: it waits for the
 * round's lock, then records the row after the delete). Otherwise the monolith's row is S's, and
 * the shard's equals it. Any later change on the monolith reaches the follower before cutover's
 * barrier and records the row, and a write on a shard by anyone but the follower is recorded by a
 * trigger with no transaction (stream/foreign-writes.ts) and never pruned. This asks nothing of the
 * row's own xmin or of the transaction named in the record: a row written inside a SAVEPOINT (its
 * xmin is the subtransaction's), a `via` row moved along by its parent (its xmin is older than the
 * move) and a deleted row are proven alike. It
 * also closes the race of a commit decoded and applied before the monolith's snapshots see it:
 * step 2 waits for that commit to be visible. (Proving against the recorded transaction's
 * visibility alone would not do for a via row: a change of the child committed before its
 * parent's move may become visible after it, and a shard that had lost that change would compare
 * equal.) Cutover takes PROVE_LOCK exclusively before fencing: no round holds the follower back
 * meanwhile.
 */
export const PROVE_LOCK = 0x5368_6172_5072n; // "SharPr"

export interface ProverOptions {
  /** records looked at per round and shard */
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

export async function startProver(config: Config, model: Model, slot: string, opts: ProverOptions = {}): Promise<Prover> {
  const batch = opts.batch ?? 5000;
  const idleMs = opts.idleMs ?? 1000;
  // the catalog's placements, as cutover proves against them (no unit moves while following)
  const catalog = await Catalog.open(config.catalog);
  const placements = await readPlacements(catalog.client).finally(() => catalog.close());
  const source = await connect(sourceEndpoint(config), { applicationName: 'shardctl follow prover' });
  const shards = new Map<string, pg.Client>();
  let stopped = false;
  let proven = 0;
  let wake: (() => void) | undefined;
  const sleep = (ms: number) => new Promise<void>((r) => {
    const t = setTimeout(r, ms);
    wake = () => (clearTimeout(t), r());
  });
  try {
    for (const s of config.shards) shards.set(s.id, await connect(shardEndpoint(config, s.id), { applicationName: 'shardctl follow prover' }));
  } catch (e) {
    await Promise.all([source, ...shards.values()].map((c) => c.end().catch(() => undefined)));
    throw e;
  }
  const router = rowRouter(model, topologyRouter(config), async () => ({ kind: 'unknown', why: 'not asked' }), (u) => placements.get(u));
  const loop = (async () => {
    while (!stopped) {
      let n = 0;
      try {
        await opts.throttle?.wait();
        if (stopped) break;
        n = await proveRound(model, router, slot, source, shards, batch);
        proven += n;
      } catch (e) {
        opts.onWarning?.(`proving changed rows while following failed (cutover will check them): ${(e as Error).message}`);
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
      await Promise.all([source, ...shards.values()].map((c) => c.end().catch(() => undefined)));
    },
  };
}

/**
 * The tables whose records the prover proves: those with a primary key. A keyless table's records
 * stay for cutover: a write to one of its rows on a shard by anyone but the follower is not recorded
 * (stream/foreign-writes.ts), so cutover's count of every value the follower wrote is what finds a row
 * tampered after the follower's last write of it.
 */
export function provedTables(model: Model): string[] {
  return model.tables.filter((t) => t.info.primaryKey.length > 0).map((t) => t.name);
}

/** How long a round waits for the monolith's older transactions to end (2, above) before it gives up, keeping its records. */
const SEE_WAIT_MS = 500;

/** One round (see above): returns how many records it removed. */
async function proveRound(model: Model, router: ReturnType<typeof rowRouter>, slot: string, source: pg.Client, shards: ReadonlyMap<string, pg.Client>, batch: number): Promise<number> {
  if (!(await source.query('SELECT pg_try_advisory_lock_shared($1) AS ok', [String(PROVE_LOCK)])).rows[0].ok) return 0; // cutover is on
  const open: pg.Client[] = [];
  try {
    // candidates: records the follower wrote (with a transaction), of the tables it proves, from every shard
    const names = provedTables(model);
    const candidates = new Map<string, { tbl: string; key: string }>();
    for (const c of shards.values()) {
      const r = await c.query('SELECT tbl, key FROM shardctl.follow_dirty WHERE slot = $1 AND xid IS NOT NULL AND tbl = ANY($2::text[]) LIMIT $3', [slot, names, batch]);
      for (const x of r.rows as { tbl: string; key: string }[]) candidates.set(`${x.tbl}\0${x.key}`, x);
    }
    if (!candidates.size) return 0;
    const all = [...candidates.values()];
    // a monolith transaction running long (a big UPDATE) would make step 2 wait with the records
    // locked, holding the follower back: its end is awaited first, holding nothing
    if (!(await olderTransactionsEnded(source))) return 0;
    // 1. lock them where they are recorded (per shard: the records it holds)
    const locked = new Map<string, Set<string>>();
    for (const [id, c] of shards) {
      await c.query('BEGIN');
      open.push(c);
      const r = await c.query(
        `SELECT tbl, key FROM shardctl.follow_dirty
          WHERE slot = $1 AND xid IS NOT NULL AND (tbl, key) IN (SELECT * FROM unnest($2::text[], $3::text[]))
          FOR UPDATE SKIP LOCKED`,
        [slot, all.map((x) => x.tbl), all.map((x) => x.key)],
      );
      locked.set(id, new Set((r.rows as { tbl: string; key: string }[]).map((x) => `${x.tbl}\0${x.key}`)));
    }
    // 2. from here on, the monolith's snapshots see everything the locked rows reflect
    if (!(await olderTransactionsEnded(source))) return 0;
    // 3. compare, table by table
    const proven = new Set<string>();
    const byTable = new Map<string, string[]>();
    for (const x of all) byTable.set(x.tbl, [...(byTable.get(x.tbl) ?? []), x.key]);
    for (const [name, jsonKeys] of byTable) {
      const t = model.table(name);
      const equal = await equalKeyed(model, router, t, jsonKeys, source, shards);
      for (const k of equal) proven.add(`${name}\0${k}`);
    }
    // 4. remove the proven records this round holds
    let removed = 0;
    for (const [id, c] of shards) {
      const mine = [...locked.get(id)!].filter((k) => proven.has(k)).map((k) => k.split('\0') as [string, string]);
      if (mine.length) {
        const r = await c.query('DELETE FROM shardctl.follow_dirty WHERE slot = $1 AND (tbl, key) IN (SELECT * FROM unnest($2::text[], $3::text[]))', [slot, mine.map((x) => x[0]), mine.map((x) => x[1])]);
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

/**
 * Step 2 (see above): notes the monolith's next transaction id and waits, at most SEE_WAIT_MS, until
 * no older transaction is running (the oldest running one, pg_current_snapshot()'s xmin, is not
 * older). Snapshots taken afterwards see all of them: no transaction that old can start again.
 */
async function olderTransactionsEnded(source: pg.ClientBase): Promise<boolean> {
  const next = (await source.query('SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS n')).rows[0].n as string;
  const until = Date.now() + SEE_WAIT_MS;
  for (;;) {
    if ((await source.query('SELECT pg_snapshot_xmin(pg_current_snapshot()) >= $1::xid8 AS ok', [next])).rows[0].ok) return true;
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
