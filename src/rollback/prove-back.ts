import type pg from 'pg';
import type { Config } from '../config/types.js';
import { connect } from '../db/connect.js';
import { shardEndpoint, sourceEndpoint } from '../db/endpoints.js';
import type { Model } from '../tables/model.js';
import { runProver, type Prover, type ProverOptions } from '../row-proof/prune.js';
import { reverseKey } from '../stream/names.js';
import { Catalog } from '../catalog/catalog.js';
import { readPlacements } from '../catalog/placements.js';

/**
 * While `rollback --follow` runs, proves the rows the reverse streams recorded on the monolith
 * (follow_dirty under each shard's reverseKey) and removes their records, so that rollback's fence
 * re-proves only what changed since the last proof (changed-back.ts), not the whole window:
 * row-proof/prune.ts's rounds, the roles turned around. The monolith holds the record (one session
 * of its own holds a round's locks); the truths are the shards, whose transactions the reverse
 * follower applies. Why the argument holds in reverse, and what differs:
 *  - every reverse follower write of a row on the monolith updates the row's record under its
 *    shard's key in the same transaction (apply.ts), so a locked record holds that stream's writes
 *    of the row back until the round commits, as forward;
 *  - step 2 waits on every shard: a shard transaction the monolith's row reflects was committed on
 *    its shard before the reverse follower applied it, so once no shard transaction older than the
 *    lock is running, every shard snapshot sees it;
 *  - several truths, one snapshot each, not one: the proof holds per stream. Every change of the row
 *    on shard i after its snapshot is applied (or, a reference row of a shard whose reference changes
 *    are not applied, noted) after the round, and records the row under shard i's key; every write
 *    of the monolith's row after its read is some stream's (recorded under that stream's key: after
 *    the delete when the round holds that record, else a record the round does not touch) or
 *    someone else's (below). So at the fence a row with no record left was written on no server
 *    since the last round that proved it equal on all of them;
 *  - a write on the monolith by anyone but the reverse follower is recorded by its trigger under
 *    REVERSE_FOREIGN, a key the prover never proves: such a row stays for the fence, as a shard
 *    write that was not the follower's does forward;
 *  - no unit moves during the window (rebalance refuses while it is open): the placements read at
 *    the start are the ones rollback routes by.
 * Rollback takes PROVE_LOCK exclusively before fencing (holdProver): no round holds the catch-up back.
 */
export async function startReverseProver(config: Config, model: Model, opts: ProverOptions = {}): Promise<Prover> {
  const catalog = await Catalog.open(config.catalog);
  const placements = await readPlacements(catalog.client).finally(() => catalog.close());
  const name = { applicationName: 'shardctl rollback --follow prover' };
  const opened: pg.Client[] = [];
  const open = async (ep: Parameters<typeof connect>[0]) => {
    const c = await connect(ep, name);
    opened.push(c);
    return c;
  };
  try {
    const source = await open(sourceEndpoint(config));
    const record = await open(sourceEndpoint(config));
    const shards = new Map<string, pg.Client>();
    for (const s of config.shards) shards.set(s.id, await open(shardEndpoint(config, s.id)));
    const slots = config.shards.map((s) => reverseKey(s.id));
    return runProver(model, { source, shards, records: new Map([['monolith', record]]), slots, truths: [...shards.values()], placements }, opts);
  } catch (e) {
    await Promise.all(opened.map((c) => c.end().catch(() => undefined)));
    throw e;
  }
}
