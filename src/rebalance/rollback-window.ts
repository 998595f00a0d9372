import type pg from 'pg';
import { readOnline } from '../catalog/online.js';
import { blockedError } from '../errors.js';
import { REVERSE_STREAM } from '../stream/names.js';

/**
 * While a rollback window is open (`cutover --reverse` until `rollback` or `cutover --finish`), every
 * shard streams its changes to the monolith on its own: a unit moved between two shards would reach
 * the monolith as a delete from one stream and an insert from another, in no defined order. So no
 * unit moves then (rollback --follow, which holds the run lock, keeps moves out only while it runs).
 */
export async function refuseInRollbackWindow(catalog: pg.ClientBase): Promise<void> {
  const w = await readOnline(catalog, REVERSE_STREAM);
  if (w && w.state !== 'rolled-back') {
    throw blockedError('a rollback window is open (cutover --reverse): moving units now could reach the monolith out of order', {
      hint: 'end the window with shardctl cutover --finish (or go back with shardctl rollback), then apply again',
    });
  }
}
