import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { withRun } from '../catalog/run.js';
import type { Config } from '../config/types.js';
import { connect } from '../db/connect.js';
import { describePgError } from '../db/pg-error.js';
import { blockedError, usageError } from '../errors.js';
import { shardEndpoint } from '../db/endpoints.js';
import { topologyRouter, type Router } from '../routing/router.js';
import { recordCrossRows } from '../catalog/cross-shard-rows.js';
import { GID_PREFIX, gidLiteral, lockGid, recordStart, transition } from '../catalog/transactions.js';

/** What the callback of `crossShard` writes through. */
export interface CrossShardTx {
  /** The router of the config, to find the shards of a key, a location or a cell. */
  readonly router: Router;
  /** Runs a statement on a shard's primary, in that shard's transaction (begun on first use). */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(shard: string, sql: string, params?: unknown[]): Promise<pg.QueryResult<R>>;
  /**
   * Declares a row this transaction writes to several shards (a table with several routes), by its
   * primary key as verify names it (`id=5`). When the transaction commits on more than one shard,
   * the row enters the catalog's record of cross-shard rows with those shards, in the same catalog
   * transaction as the commit decision.
   */
  crossRow(table: string, key: string): void;
}

export interface CrossShardOptions {
  /**
   * Called after every participant has prepared and before the decision is recorded ('prepared'),
   * and after the commit decision is recorded, before any COMMIT PREPARED ('decided'). For tracing,
   * and for tests that kill the coordinator at those points.
   */
  onPhase?: (phase: 'prepared' | 'decided', gid: string) => void | Promise<void>;
}

export interface CrossShardResult<T> {
  value: T;
  /** the shards written to */
  shards: string[];
  /** the two-phase transaction's id; undefined when one shard (a plain COMMIT) sufficed */
  gid?: string;
}

/**
 * Runs `fn` as ONE transaction over every shard it writes to: all shards commit or none does.
 * One shard: a plain COMMIT. More: two-phase commit — PREPARE TRANSACTION on each, the decision
 * recorded in the catalog (`shardctl.transactions`), COMMIT PREPARED on each. If the coordinator
 * (this process) dies in between, the prepared transactions hold their locks until
 * `shardctl resolve` finishes them from the catalog record: commit when the decision was recorded,
 * roll back when it was not. Shards need `max_prepared_transactions` > 0.
 *
 * Connections are the application's own (no shardctl session settings), so shardctl's fence —
 * a moving unit, a read-only cell — refuses these writes like any other.
 *
 * @example
 *   await crossShard(config, async (tx) => {
 *     for (const shard of new Set([tx.router.shardForLocation(a.lat, a.lng), tx.router.shardForLocation(b.lat, b.lng)]))
 *       await tx.query(shard, 'INSERT INTO bumps (id, user1_id, user2_id) VALUES ($1, $2, $3)', [id, a.id, b.id]);
 *   });
 */
export async function crossShard<T>(config: Config, fn: (tx: CrossShardTx) => Promise<T>, opts: CrossShardOptions = {}): Promise<CrossShardResult<T>> {
  const open = new Map<string, pg.Client>();
  const declared = new Map<string, Set<string>>();
  const tx: CrossShardTx = {
    router: topologyRouter(config),
    crossRow(table, key) {
      const name = table.includes('.') ? table : `public.${table}`;
      if (!config.tables.some((t) => `${t.schema}.${t.name}` === name && t.routes)) throw usageError(`crossShard: ${name} is not a table with several routes in ${config.file}`);
      (declared.get(name) ?? declared.set(name, new Set()).get(name)!).add(key);
    },
    async query(shard, sql, params) {
      let c = open.get(shard);
      if (!c) {
        if (!config.shards.some((s) => s.id === shard)) throw usageError(`crossShard: unknown shard ${shard}`);
        c = await connect(shardEndpoint(config, shard), { raw: true, applicationName: 'shardctl crossShard' });
        open.set(shard, c);
        await c.query('BEGIN');
      }
      try {
        return await c.query(sql, params);
      } catch (e) {
        throw describePgError(e, `shard ${shard}`);
      }
    },
  };
  let prepared = false;
  try {
    const value = await fn(tx);
    const shards = [...open.keys()];
    if (shards.length <= 1) {
      for (const c of open.values()) await c.query('COMMIT');
      return { value, shards };
    }
    prepared = true; // from here on, twoPhase owns the outcome
    const gid = await twoPhase(config, open, opts, declared);
    return { value, shards, gid };
  } catch (e) {
    if (!prepared) for (const c of open.values()) await c.query('ROLLBACK').catch(() => undefined);
    throw e;
  } finally {
    for (const c of open.values()) await c.end().catch(() => undefined);
  }
}

async function twoPhase(config: Config, open: Map<string, pg.Client>, opts: CrossShardOptions, declared: ReadonlyMap<string, ReadonlySet<string>>): Promise<string> {
  const gid = `${GID_PREFIX}${randomUUID()}`;
  const lit = gidLiteral(gid);
  let opened = false;
  // no session lock: the coordinator locks its own gid (resolve leaves a live coordinator alone)
  return withRun(config.catalog, { command: 'crossShard', lock: 'none' }, async ({ catalog }) => {
    opened = true;
    const cat = catalog.client;
    await lockGid(cat, gid, true); // held until this session ends: resolve leaves us alone while we live
    await recordStart(cat, gid, [...open.keys()]);
    const done: string[] = [];
    for (const [shard, c] of open) {
      try {
        // PREPARE in a transaction that already failed acts as ROLLBACK and reports no error
        const r = await c.query(`PREPARE TRANSACTION ${lit}`);
        if (r.command !== 'PREPARE') throw new Error('the transaction had failed (an error inside it was caught), so it rolled back instead of preparing');
        done.push(shard);
      } catch (e) {
        await abort(cat, gid, open, done);
        throw describePgError(e, `shard ${shard}: two-phase commit ${gid}: prepare`);
      }
    }
    await opts.onPhase?.('prepared', gid);
    if (!(await decide(cat, gid, [...open.keys()], declared))) {
      await abort(cat, gid, open, done);
      throw blockedError(`two-phase commit ${gid} was rolled back by shardctl resolve before it could commit`);
    }
    await opts.onPhase?.('decided', gid);
    const failed: string[] = [];
    for (const [shard, c] of open) await c.query(`COMMIT PREPARED ${lit}`).catch(() => failed.push(shard));
    if (failed.length) {
      throw blockedError(`two-phase commit ${gid} is decided (committed) but shard(s) ${failed.join(', ')} did not confirm`, {
        hint: 'run `shardctl resolve` to finish it; until then those shards hold its locks',
      });
    }
    await transition(cat, gid, ['committing'], 'committed');
    return gid;
  }).catch(async (e) => {
    // no catalog, no record: nothing was prepared, the shards' transactions roll back
    if (!opened) for (const c of open.values()) await c.query('ROLLBACK').catch(() => undefined);
    throw e;
  });
}

/** The commit decision, and the declared cross-shard rows with it: both or neither. */
async function decide(cat: pg.ClientBase, gid: string, shards: readonly string[], declared: ReadonlyMap<string, ReadonlySet<string>>): Promise<boolean> {
  await cat.query('BEGIN');
  try {
    const ok = await transition(cat, gid, ['preparing'], 'committing');
    if (ok) for (const [table, keys] of declared) await recordCrossRows(cat, table, [...keys].map((key) => ({ key, shards: [...shards].sort() })), 'crossShard');
    await cat.query(ok ? 'COMMIT' : 'ROLLBACK');
    return ok;
  } catch (e) {
    await cat.query('ROLLBACK').catch(() => undefined);
    throw e;
  }
}

/** Rolls back: prepared participants by gid, the others as plain transactions; records the outcome. */
async function abort(cat: pg.ClientBase, gid: string, open: Map<string, pg.Client>, prepared: readonly string[]): Promise<void> {
  await transition(cat, gid, ['preparing'], 'aborting');
  let clean = true;
  for (const [shard, c] of open) {
    const sql = prepared.includes(shard) ? `ROLLBACK PREPARED ${gidLiteral(gid)}` : 'ROLLBACK';
    await c.query(sql).catch(() => (clean = clean && !prepared.includes(shard)));
  }
  if (clean) await transition(cat, gid, ['aborting'], 'aborted');
}
