import { withRun } from '../catalog/run.js';
import type { Config } from '../config/types.js';
import { withClient } from '../db/connect.js';
import { blockedError } from '../errors.js';
import { shardEndpoint, sourceEndpoint } from '../db/endpoints.js';
import { loadModel } from '../tables/model.js';
import { liftSourceFence } from '../fence/source-fence.js';
import { MIGRATION_STREAM } from '../stream/names.js';
import { clearShardState } from '../stream/positions.js';
import { qualifiedName } from '../tables/scope.js';
import { stopRecordingWrites } from '../stream/foreign-writes.js';
import { dropStream } from '../stream/slot.js';
import { deleteOnline, readOnline } from '../catalog/online.js';

export interface AbandonResult {
  /** what was there and is gone now */
  slot: boolean;
  publication: boolean;
  fenceLifted: boolean;
  state?: string;
}

/**
 * `migrate --abandon`: ends an online migration that will not be cut over. Drops the slot (a slot
 * nobody reads keeps every WAL segment on the monolith) and the publication, ends a follower still
 * streaming from it, lifts a cutover fence left by a crashed cutover, and forgets the stream
 * positions on the shards. The copied rows stay on the shards (a later migrate replaces them).
 * After a completed cutover there is nothing to abandon (the monolith's fence stays).
 */
export async function abandon(config: Config): Promise<AbandonResult> {
  const names = MIGRATION_STREAM;
  return withRun(config.catalog, { command: 'migrate --abandon', lock: 'cutover', busy: 'a shardctl cutover is running; wait for it to finish' }, async ({ catalog }) => {
    const state = await readOnline(catalog.client, names);
    if (state?.state === 'cut-over') {
      throw blockedError('the online migration was cut over: the shards are the source of truth, there is nothing to abandon');
    }
    const source = sourceEndpoint(config);
    const dropped = await withClient(source, (c) => dropStream(c, names));
    let fenceLifted = false;
    if (state?.state === 'fenced') {
      const model = await withClient(source, (c) => loadModel(config, c));
      await withClient(source, (c) => liftSourceFence(c, model.tables.map((t) => t.name)));
      fenceLifted = true;
    }
    const tables = config.tables.map((t) => qualifiedName(t));
    await Promise.all(
      config.shards.map((s) =>
        withClient(shardEndpoint(config, s.id), async (c) => {
          await stopRecordingWrites(c, tables);
          await clearShardState(c, names.slot);
        }),
      ),
    );
    await deleteOnline(catalog.client, names);
    return { ...dropped, fenceLifted, state: state?.state };
  });
}
