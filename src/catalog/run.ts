import type pg from 'pg';
import { withClient } from '../db/connect.js';
import { isUserError } from '../errors.js';
import { redactText } from '../redact.js';
import { Catalog, type Run } from './catalog.js';

export type RunStatus = 'ok' | 'failed' | 'interrupted';

/**
 * The lock a catalog session holds until it closes (the keys are in locks.ts):
 *  - `run`: the run lock, and the run recorded in shardctl.runs: every command that changes the
 *    fleet; a second one is refused (exit 3) naming the holder;
 *  - `cutover`: the cutover lock, no runs row: one cutover, rollback, abandon or cutover --finish at
 *    a time while the follower holds the run lock; a second one is refused with `busy`;
 *  - `none`: no lock: a read, a preview, a dry run, or a session whose locks are finer and its
 *    own (a cross-shard transaction's coordinator and resolve lock one gid each).
 */
export type CatalogLock = 'run' | 'cutover' | 'none';

export interface RunSpec<T> {
  readonly lock: CatalogLock;
  /** the command, recorded in shardctl.runs under the run lock */
  readonly command: string;
  readonly args?: Record<string, unknown>;
  /** with the cutover lock: the refusal when another session holds it */
  readonly busy?: string;
  /** create or upgrade the catalog schema when opening it (default true; a dry run creates nothing) */
  readonly create?: boolean;
  /** how a recorded run that returned ended: its status and the summary stored with it (default ok) */
  readonly outcome?: (value: T) => { status: RunStatus; summary: unknown };
}

export interface RunScope {
  readonly catalog: Catalog;
  /** the recorded run; undefined when the spec does not record one */
  readonly run?: Run;
  /** Records the end now (an interruption, before throwing it); `outcome` is then not consulted. */
  finish(status: RunStatus, summary: unknown): Promise<void>;
}

/**
 * Every catalog session: open the catalog, take the spec's lock (with the run lock, record the
 * run), run `fn`, record how a recorded run ended (from `outcome`, or `failed`/`interrupted` with
 * the redacted error when `fn` throws), and always close the catalog, which releases the lock.
 *
 * @example await withRun(config.catalog, { command: 'add-shard', args, lock: 'run', outcome: () => ({ status: 'ok', summary }) }, ({ catalog }) => …);
 */
export async function withRun<T>(url: string, spec: RunSpec<T>, fn: (scope: RunScope) => Promise<T>): Promise<T> {
  const catalog = await Catalog.open(url, { create: spec.create });
  try {
    if (spec.lock === 'cutover') await catalog.lockCutover(spec.busy ?? 'another shardctl cutover, rollback or abandon is running');
    const run = spec.lock === 'run' ? await catalog.lock(spec.command, spec.args ?? {}) : undefined;
    let finished = false;
    const finish = async (status: RunStatus, summary: unknown) => {
      finished = true;
      if (run) await catalog.finish(run, status, summary);
    };
    let value: T;
    try {
      value = await fn({ catalog, run, finish });
    } catch (e) {
      if (!finished) {
        const status = isUserError(e) && e.kind === 'interrupted' ? 'interrupted' : 'failed';
        await finish(status, { error: redactText(e instanceof Error ? e.message : String(e)) }).catch(() => undefined);
      }
      throw e;
    }
    if (!finished) {
      const { status, summary } = spec.outcome?.(value) ?? { status: 'ok', summary: null };
      await finish(status, summary);
    }
    return value;
  } finally {
    await catalog.close();
  }
}

/**
 * A catalog session with no lock and no runs row that neither creates nor upgrades the schema (the
 * `none` kind without the Catalog object): the reads of plan and verify, the throttle's flag. Errors
 * name the catalog; `applicationName` shows in pg_stat_activity (and the throttle flag's set_by).
 */
export function withCatalogSession<T>(url: string, fn: (c: pg.Client) => Promise<T>, applicationName?: string): Promise<T> {
  return withClient({ label: 'catalog', url }, fn, applicationName ? { applicationName } : undefined);
}
