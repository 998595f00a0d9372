import { withRun } from '../catalog/run.js';
import { deleteOnline, readOnline } from '../catalog/online.js';
import type { Config } from '../config/types.js';
import { withClient } from '../db/connect.js';
import { shardEndpoint, sourceEndpoint } from '../db/endpoints.js';
import { REVERSE_STREAM } from '../stream/names.js';
import { loadModel } from '../tables/model.js';
import { liftSourceFence } from '../fence/source-fence.js';
import { closeReverse } from './reverse-stream.js';

export interface FinishResult {
  /** a rollback window was open (or left by a crash) and is closed now */
  closed: boolean;
  /** shards whose reverse slot was dropped */
  slotsDropped: string[];
  /** a rollback interrupted after fencing the shards left its fence: lifted */
  shardFenceLifted: boolean;
}

/**
 * `cutover --finish`: ends the rollback window. The shards stay the source of truth for good:
 * a running `rollback --follow` is stopped (it exits 0), every shard's reverse slot and publication
 * is dropped (a slot nobody reads keeps all of its shard's WAL), the positions are forgotten on the
 * monolith. Idempotent; refused after a rollback (there the monolith is the source of truth).
 */
export async function finishCutover(config: Config): Promise<FinishResult> {
  return withRun(config.catalog, { command: 'cutover --finish', lock: 'cutover', busy: 'another shardctl cutover, rollback or abandon is running' }, async ({ catalog }) => {
    const rev = await readOnline(catalog.client, REVERSE_STREAM);
    if (rev?.state === 'rolled-back') {
      const slotsDropped = await closeReverse(config); // a crashed rollback's clean-up; its record stays
      return { closed: false, slotsDropped, shardFenceLifted: false };
    }
    let shardFenceLifted = false;
    if (rev?.state === 'fenced') {
      // a rollback stopped before its record: the shards are still the source of truth
      const model = await withClient(sourceEndpoint(config), (c) => loadModel(config, c));
      const tables = model.tables.map((t) => t.name);
      for (const s of config.shards) await withClient(shardEndpoint(config, s.id), (c) => liftSourceFence(c, tables, 'rollback'));
      shardFenceLifted = true;
    }
    const slotsDropped = await closeReverse(config);
    await deleteOnline(catalog.client, REVERSE_STREAM);
    return { closed: Boolean(rev), slotsDropped, shardFenceLifted };
  });
}
