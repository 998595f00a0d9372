import { applyReadOnly, editConfigFile, previewConfigEdit, type Config } from '../src/index.js';
import { load, output } from './context.js';
import { runRebalance, type RebalanceFlags } from './run-rebalance.js';

type Edit = Parameters<typeof editConfigFile>[1];

export interface TopologyEdit {
  edit: Edit;
  /** what the edit does, e.g. `tenant 7 pinned to s0` */
  done: string;
  /** the exact command that applies the preview */
  applyWith: string;
  /** the read-only mark of a cell takes effect on the shards as soon as the edit is written */
  readOnly?: boolean;
}

/**
 * `pin`, `unpin`, `mapping set`: without --apply the edit is only previewed (the config it would give,
 * validated, and the rebalance plan from it): no file is written and no server is changed. With
 * --apply the file is written once the rebalance's preflight passed (catalog reached, lock held, no
 * rollback window), then the moves run; a refused preflight leaves the file as it was.
 */
export async function editAndRebalance(opts: RebalanceFlags, e: TopologyEdit): Promise<void> {
  const config = load(opts);
  const out = output(opts);
  const next: Config = previewConfigEdit(config.file, e.edit);
  if (!opts.apply) {
    out.info(`preview: ${e.done} (${config.file} not changed)`);
    await runRebalance(next, opts, { applyWith: e.applyWith });
    return;
  }
  await runRebalance(next, opts, {
    onPreflightPassed: async () => {
      editConfigFile(config.file, e.edit);
      out.info(`${e.done} in ${config.file}`);
      // read-only takes effect now, on the shards as they are; it does not wait for the moves
      if (e.readOnly) await applyReadOnly(next);
    },
  });
}
