import type pg from 'pg';
import type { Config } from '../config/types.js';
import { connect } from '../db/connect.js';
import { shardEndpoint, sourceEndpoint } from '../db/endpoints.js';
import { columnType, type Model, type TableModel } from '../tables/model.js';
import { topologyRouter } from '../routing/router.js';
import { rowRouter } from '../stream/route.js';
import { compareRows, keyText } from './changed.js';
import { Catalog } from '../catalog/catalog.js';
import { readPlacements } from '../catalog/placements.js';

/**
 * While following, proves the rows recorded in follow_dirty and removes them from the record, so
 * that cutover's fence re-proves only what changed since the last proof (changed.ts), not every
 * row changed since the copy. A round, on a few thousand recorded rows:
 *  1. on every shard, in one READ COMMITTED transaction each, locks the records of the candidate
 *     rows (FOR UPDATE SKIP LOCKED: never waits for the follower; a record it holds is left for a
 *     later round) and reads the rows;
 *  2. reads the same rows on the monolith (one statement: one snapshot), with each row's xmin;
 *  3. a row is proven when it is exactly where it belongs with the monolith's content (changed.ts)
 *     and, if the monolith holds it, every locked record names the transaction that wrote the
 *     monolith's version (its xmin): the shard and the monolith then show the same logical point of
 *     that row, whatever the monolith did to other rows meanwhile. (A commit can be decoded and
 *     applied before the monolith's snapshots see it; without this, a shard that had applied a
 *     change, wrongly, could compare equal to the version before it.) A row absent from both is
 *     proven too: the last change the shard applied removed it.
 *  4. deletes the proven rows' locked records and commits.
 * Why a proven row stays proven: the follower records a row it writes again (writeDirty updates the
 * record, so it waits for the round's lock and records the row after the delete); any later change
 * on the monolith reaches the follower before cutover's barrier; and a write on a shard by anyone
 * but the follower is recorded by a trigger (stream/foreign-writes.ts), never pruned. Records with
 * no transaction (those, and rows of tables without a primary key) are left to cutover.
 * Cutover takes PROVE_LOCK exclusively before fencing: no round holds the follower back meanwhile.
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

/** One round (see above): returns how many records it removed. */
async function proveRound(model: Model, router: ReturnType<typeof rowRouter>, slot: string, source: pg.Client, shards: ReadonlyMap<string, pg.Client>, batch: number): Promise<number> {
  if (!(await source.query('SELECT pg_try_advisory_lock_shared($1) AS ok', [String(PROVE_LOCK)])).rows[0].ok) return 0; // cutover is on
  const open: pg.Client[] = [];
  try {
    // candidates: records with a transaction, of keyed tables, from every shard
    const keyed = new Set(model.tables.filter((t) => t.info.primaryKey.length).map((t) => t.name));
    const candidates = new Map<string, { tbl: string; key: string }>();
    for (const c of shards.values()) {
      const r = await c.query('SELECT tbl, key FROM shardctl.follow_dirty WHERE slot = $1 AND xid IS NOT NULL AND tbl = ANY($2::text[]) LIMIT $3', [slot, [...keyed], batch]);
      for (const x of r.rows as { tbl: string; key: string }[]) candidates.set(`${x.tbl}\0${x.key}`, x);
    }
    if (!candidates.size) return 0;
    const all = [...candidates.values()];
    // 1. lock them where they are recorded (per shard: record → the transaction it names)
    const locked = new Map<string, Map<string, string>>();
    for (const [id, c] of shards) {
      await c.query('BEGIN');
      open.push(c);
      const r = await c.query(
        `SELECT tbl, key, xid::text AS xid FROM shardctl.follow_dirty
          WHERE slot = $1 AND xid IS NOT NULL AND (tbl, key) IN (SELECT * FROM unnest($2::text[], $3::text[]))
          FOR UPDATE SKIP LOCKED`,
        [slot, all.map((x) => x.tbl), all.map((x) => x.key)],
      );
      locked.set(id, new Map((r.rows as { tbl: string; key: string; xid: string }[]).map((x) => [`${x.tbl}\0${x.key}`, x.xid])));
    }
    // 2, 3. compare, table by table
    const proven = new Set<string>();
    const byTable = new Map<string, string[]>();
    for (const x of all) byTable.set(x.tbl, [...(byTable.get(x.tbl) ?? []), x.key]);
    for (const [name, jsonKeys] of byTable) {
      const t = model.table(name);
      const keys = jsonKeys.map((k) => JSON.parse(k) as string[]);
      const texts = await canonicalKeys(source, t, keys);
      const compared = await compareRows(model, router, t, keys, source, shards);
      for (const [i, k] of jsonKeys.entries()) {
        const id = `${name}\0${k}`;
        const c = compared.get(texts[i]!);
        if (c?.problems.length) continue;
        const records = [...locked.values()].filter((m) => m.has(id));
        if (!records.length) continue;
        if (c?.want && !records.every((m) => m.get(id) === c.want!.xmin)) continue;
        proven.add(id);
      }
    }
    // 4. remove the proven records this round holds
    let removed = 0;
    for (const [id, c] of shards) {
      const mine = [...locked.get(id)!.keys()].filter((k) => proven.has(k)).map((k) => k.split('\0') as [string, string]);
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

/** Each key as PostgreSQL prints it (`(k1, k2)`, keyText's form), in the order given: a key the follower recorded in another spelling still matches its row. */
async function canonicalKeys(source: pg.ClientBase, t: TableModel, keys: readonly string[][]): Promise<string[]> {
  const pk = t.info.primaryKey;
  const arrays = pk.map((k, i) => `$${i + 1}::text[]::${columnType(t.info, k)}[]`).join(', ');
  const cols = pk.map((_, i) => `x.c${i}::text AS k${i}`).join(', ');
  const r = await source.query(`SELECT ${cols} FROM unnest(${arrays}) WITH ORDINALITY AS x(${pk.map((_, i) => `c${i}`).join(', ')}, o) ORDER BY o`, pk.map((_, i) => keys.map((k) => k[i]!)));
  return r.rows.map((x) => keyText(t, x));
}
