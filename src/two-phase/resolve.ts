import type { Catalog } from '../catalog/catalog.js';
import { withRun } from '../catalog/run.js';
import type { Config } from '../config/types.js';
import { withClient } from '../db/connect.js';
import { describePgError } from '../db/pg-error.js';
import { shardEndpoint } from '../db/endpoints.js';
import { GID_PREFIX, gidLiteral, lockGid, openTransactions, transition, txState, unlockGid, type TxRecord } from '../catalog/transactions.js';

export interface ResolvedShard {
  shard: string;
  /** what was done there: absent = no prepared transaction of that gid (already finished, or never prepared) */
  action: 'committed' | 'rolled back' | 'absent' | 'failed';
  error?: string;
}

export interface ResolvedTransaction {
  gid: string;
  startedAt: string;
  /** commit: the coordinator had recorded its decision; rollback: it had not */
  decision: 'commit' | 'rollback' | 'in progress';
  shards: ResolvedShard[];
}

export interface ResolveResult {
  transactions: ResolvedTransaction[];
  /** prepared transactions named like shardctl's that no open catalog record knows (left alone) */
  unknown: { shard: string; gid: string; prepared: string }[];
  /** every transaction finished on every participant (none in progress, none failed) */
  ok: boolean;
}

/**
 * Finishes in-doubt cross-shard transactions after a coordinator crash, from the catalog record:
 * decided (committing) → COMMIT PREPARED on every participant; undecided (preparing) → decided now
 * as rollback, ROLLBACK PREPARED everywhere. A transaction whose coordinator still runs (its session
 * holds the gid's advisory lock) is left alone. Idempotent: run it again after a failure.
 *
 * @example const r = await resolve(loadConfig('shardctl.yaml')); r.transactions.map((t) => t.decision);
 */
export async function resolve(config: Config): Promise<ResolveResult> {
  // no session lock: each transaction is resolved under its own gid's lock (resolveOne)
  return withRun(config.catalog, { command: 'resolve', lock: 'none' }, async ({ catalog }) => {
    const cat = catalog.client;
    const open = await openTransactions(cat);
    const transactions: ResolvedTransaction[] = [];
    for (const t of open) transactions.push(await resolveOne(config, catalog, t));
    const known = new Set(open.map((t) => t.gid));
    const unknown = (await preparedEverywhere(config)).filter((p) => !known.has(p.gid));
    const ok = transactions.every((t) => t.decision !== 'in progress' && t.shards.every((s) => s.action !== 'failed'));
    return { transactions, unknown, ok };
  });
}

async function resolveOne(config: Config, catalog: Catalog, t: TxRecord): Promise<ResolvedTransaction> {
  const cat = catalog.client;
  const base = { gid: t.gid, startedAt: t.startedAt.toISOString() };
  if (!(await lockGid(cat, t.gid, false))) return { ...base, decision: 'in progress', shards: [] };
  try {
    // the coordinator is gone; an undecided transaction is decided now, as rollback
    if (t.state === 'preparing') await transition(cat, t.gid, ['preparing'], 'aborting');
    const state = await txState(cat, t.gid);
    const commit = state === 'committing';
    const shards: ResolvedShard[] = [];
    for (const shard of t.participants) shards.push(await finishOn(config, shard, t.gid, commit));
    if (shards.every((s) => s.action !== 'failed')) await transition(cat, t.gid, [commit ? 'committing' : 'aborting'], commit ? 'committed' : 'aborted');
    return { ...base, decision: commit ? 'commit' : 'rollback', shards };
  } finally {
    await unlockGid(cat, t.gid);
  }
}

async function finishOn(config: Config, shard: string, gid: string, commit: boolean): Promise<ResolvedShard> {
  if (!config.shards.some((s) => s.id === shard)) return { shard, action: 'failed', error: `shard ${shard} is not in the config` };
  const endpoint = shardEndpoint(config, shard);
  try {
    return await withClient(endpoint, async (c) => {
      const r = await c.query(`SELECT 1 FROM pg_prepared_xacts WHERE gid = $1 AND database = current_database()`, [gid]);
      if (!r.rowCount) return { shard, action: 'absent' as const };
      await c.query(`${commit ? 'COMMIT' : 'ROLLBACK'} PREPARED ${gidLiteral(gid)}`);
      return { shard, action: commit ? ('committed' as const) : ('rolled back' as const) };
    });
  } catch (e) {
    return { shard, action: 'failed', error: describePgError(e, `shard ${shard}`).message };
  }
}

/** shardctl's prepared transactions on every reachable shard primary. */
async function preparedEverywhere(config: Config): Promise<ResolveResult['unknown']> {
  const out: ResolveResult['unknown'] = [];
  for (const s of config.shards) {
    const rows = await withClient(shardEndpoint(config, s.id), async (c) =>
      (await c.query(`SELECT gid, prepared FROM pg_prepared_xacts WHERE gid LIKE $1 AND database = current_database() ORDER BY prepared`, [`${GID_PREFIX}%`])).rows,
    ).catch(() => []);
    for (const r of rows) out.push({ shard: s.id, gid: r.gid, prepared: new Date(r.prepared).toISOString() });
  }
  return out;
}
