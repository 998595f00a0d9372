import type pg from 'pg';
import type { Config } from '../config/types.js';
import { addRecorded, checkRecordedRows, type ChangedRows, type RecordedRows } from '../row-proof/changed.js';
import { reverseKey } from '../stream/names.js';
import { readDirty } from '../stream/positions.js';
import type { Model } from '../tables/model.js';
import { REVERSE_FOREIGN } from './reverse-stream.js';

/**
 * Rollback's proof (rollback.ts), inside its fence (shards fenced, the monolith caught up past every shard's mark,
 * both quiet): the rows changed during the window are compared, monolith vs their routed shard
 * (row-proof/changed.ts's comparer; a row absent from both is proven). Which rows:
 *  - every row the reverse follower wrote on the monolith, recorded by its applier in follow_dirty
 *    under the shard's key (reverseKey) in the transaction that wrote it, and every reference row
 *    of the shards whose reference changes it does not apply (recorded, not applied: rollback/follow-back.ts),
 *    unless the reverse prover proved it while following and removed its record (prove-back.ts);
 *  - every row written on the monolith by anyone else (a DBA through the fence's bypass), recorded by
 *    a trigger under REVERSE_FOREIGN (rollback/reverse-stream.ts).
 * Why nothing else can differ: cutover proved the monolith equal to the shards at its fence, and
 * opened the reverse slots there, before any application write to a shard. Since then:
 *  - the monolith's configured tables are fenced; the only writers that pass are shardctl sessions
 *    (the bypass): the reverse follower, whose writes are recorded, and anyone else, recorded by the
 *    trigger (ENABLE ALWAYS: replication-role sessions too);
 *  - every write to a configured table on a shard, whoever makes it, is decoded into that shard's
 *    reverse slot (the publication covers the tables; replication roles and triggers do not hide a
 *    change from logical decoding), and the catch-up brings the monolith past each shard's mark, so
 *    every such change is applied (and recorded) or, for reference rows of the other shards, recorded.
 * So a row recorded nowhere was written on neither side since the cutover's proof. The limits:
 *  - TRUNCATE on a shard stops the reverse follower (it refuses truncates), so rollback cannot catch
 *    up and refuses; on the monolith the fence refuses it except through the bypass, which the
 *    trigger does not see (as TRUNCATE of the shards while following, stream/foreign-writes.ts);
 *  - DDL on a shard that changes a table's shape stops the reverse follower (a relation message with
 *    another shape): again no catch-up, a refusal; DDL that keeps the shape changes no row;
 *  - a slot advanced or recreated by hand on a shard loses changes no proof can see: rollback refuses
 *    when a reverse slot is missing, not when someone skipped its WAL.
 * The work grows with the rows changed since the prover's last round, not with the window or the data.
 */
export async function checkChangedBack(config: Config, model: Model, source: pg.ClientBase, shards: ReadonlyMap<string, pg.ClientBase>, placements: ReadonlyMap<string, string>): Promise<ChangedRows> {
  const records: RecordedRows = new Map();
  for (const key of [...config.shards.map((s) => reverseKey(s.id)), REVERSE_FOREIGN]) addRecorded(records, await readDirty(source, key));
  return checkRecordedRows(model, records, source, shards, placements);
}
