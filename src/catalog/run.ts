import { isUserError } from '../errors.js';
import { redactText } from '../redact.js';
import { Catalog, type Run } from './catalog.js';

export type RunStatus = 'ok' | 'failed' | 'interrupted';

export interface RunSpec<T> {
  /** the command recorded in shardctl.runs */
  readonly command: string;
  readonly args: Record<string, unknown>;
  /** false for a pass that changes nothing (a dry run, a preview): no lock and no runs row */
  readonly record: boolean;
  /** create or upgrade the catalog schema when opening it (default true; a dry run creates nothing) */
  readonly create?: boolean;
  /** how a run that returned ended: its status and the summary stored with it */
  readonly outcome: (value: T) => { status: RunStatus; summary: unknown };
}

export interface RunScope {
  readonly catalog: Catalog;
  /** the recorded run; undefined when the spec does not record one */
  readonly run?: Run;
  /** Records the end now (an interruption, before throwing it); `outcome` is then not consulted. */
  finish(status: RunStatus, summary: unknown): Promise<void>;
}

/**
 * The skeleton of every mutating command: open the catalog, take the run lock and record the run,
 * run `fn`, record how it ended (from `outcome`, or `failed`/`interrupted` with the redacted error
 * when `fn` throws), and always close the catalog, which releases the lock.
 *
 * @example await withRun(config.catalog, { command: 'add-shard', args, record: true, outcome: () => ({ status: 'ok', summary }) }, ({ catalog }) => …);
 */
export async function withRun<T>(url: string, spec: RunSpec<T>, fn: (scope: RunScope) => Promise<T>): Promise<T> {
  const catalog = await Catalog.open(url, { create: spec.create });
  try {
    const run = spec.record ? await catalog.lock(spec.command, spec.args) : undefined;
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
      const { status, summary } = spec.outcome(value);
      await finish(status, summary);
    }
    return value;
  } finally {
    await catalog.close();
  }
}
