import type pg from 'pg';
import type { Config } from '../config/types.js';
import { connect } from '../db/connect.js';
import { shardEndpoint, sourceEndpoint } from '../db/endpoints.js';
import type { Model } from '../tables/model.js';
import { endSides, runProver, type Prover, type ProverOptions } from '../row-proof/prune.js';
import { Catalog } from '../catalog/catalog.js';
import { readPlacements } from '../catalog/placements.js';

export { PROVE_LOCK, provedTables, type Prover, type ProverOptions } from '../row-proof/prune.js';

/**
 * While following, proves the rows recorded in follow_dirty on the shards and removes them from the
 * record, so that cutover's fence re-proves only what changed since the last proof (changed.ts),
 * not every row changed since the copy: row-proof/prune.ts's rounds, with the shards holding the
 * record (under the slot's key) and the monolith as the one truth whose transactions the follower
 * applies. Step 2 waits on the monolith; step 3 reads it in one statement per chunk (one snapshot).
 * A write on a shard by anyone but the follower is recorded by a trigger with no transaction
 * (stream/foreign-writes.ts, on the same key: the record loses its transaction) and never pruned.
 * (Proving against the recorded transaction's visibility alone would not do for a via row: a change
 * of the child committed before its parent's move may become visible after it, and a shard that had
 * lost that change would compare equal.) Cutover takes PROVE_LOCK exclusively before fencing.
 */
export async function startProver(config: Config, model: Model, slot: string, opts: ProverOptions = {}): Promise<Prover> {
  // the catalog's placements, as cutover proves against them (no unit moves while following)
  const catalog = await Catalog.open(config.catalog);
  const placements = await readPlacements(catalog.client).finally(() => catalog.close());
  const source = await connect(sourceEndpoint(config), { applicationName: 'shardctl follow prover' });
  const shards = new Map<string, pg.Client>();
  try {
    for (const s of config.shards) shards.set(s.id, await connect(shardEndpoint(config, s.id), { applicationName: 'shardctl follow prover' }));
  } catch (e) {
    await endSides({ source, shards, records: shards, truths: [] });
    throw e;
  }
  return runProver(model, { source, shards, records: shards, slots: [slot], truths: [source], placements }, opts);
}
