import type pg from 'pg';
import { withRun } from '../catalog/run.js';
import { readOnline } from '../catalog/online.js';
import { blockedError } from '../errors.js';
import { MIGRATION_STREAM, REVERSE_STREAM } from './names.js';

/**
 * While an online window is open a change stream carries the fleet's writes, and whatever else
 * writes rows or changes the topology breaks it:
 *  - the follow window (`migrate --follow` until `cutover` or `migrate --abandon`): a resync copies
 *    rows the follower replays again (duplicate keys), a moved unit leaves the follower writing to
 *    its old shard, a new shard has no stream position;
 *  - the rollback window (`cutover --reverse` until `cutover --finish` or `rollback`): every shard
 *    streams its changes to the monolith on its own, so a unit moved between two shards reaches it
 *    as a delete from one stream and an insert from another in no defined order, and a new shard
 *    has no reverse slot.
 * So every command that copies, moves units or changes the shards refuses (exit 3) while either is
 * open, naming the window and the way out; its preview still works. `action` names the command.
 */
export async function refuseInOnlineWindow(catalog: pg.ClientBase, action: string): Promise<void> {
  const fwd = await readOnline(catalog, MIGRATION_STREAM);
  if (fwd && fwd.state !== 'cut-over' && fwd.state !== 'rolled-back') {
    throw blockedError(`${action} is refused: an online migration is open (migrate --follow, ${fwd.state}): copying or moving units or changing the shards now would break the follower's stream`, {
      hint: 'finish it with shardctl cutover (or end it with shardctl migrate --abandon), then run it again',
    });
  }
  const rev = await readOnline(catalog, REVERSE_STREAM);
  if (rev && rev.state !== 'rolled-back') {
    throw blockedError(`${action} is refused: a rollback window is open (cutover --reverse): moving units now could reach the monolith out of order, and a new shard would have no reverse slot`, {
      hint: 'end the window with shardctl cutover --finish (or go back with shardctl rollback), then run it again',
    });
  }
}

/** refuseInOnlineWindow for a caller without a catalog session (before it edits the config file). */
export async function checkNoOnlineWindow(catalogUrl: string, action: string): Promise<void> {
  await withRun(catalogUrl, { command: action, lock: 'none', create: false }, ({ catalog }) => refuseInOnlineWindow(catalog.client, action));
}
