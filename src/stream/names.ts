import type { StreamNames } from '../catalog/online.js';

export type { StreamNames };

/**
 * The replication slot and publication of an online migration. One per source database: a second
 * `migrate --follow` resumes the first. (Online rebalance moves will name theirs per move.)
 */
export const MIGRATION_STREAM: StreamNames = { slot: 'shardctl_migrate', publication: 'shardctl_migrate' };

/**
 * The reverse stream of a rollback window (`cutover --reverse`): a slot and publication of this name
 * on EVERY shard, applied to the monolith by `rollback --follow`. Each shard's position is kept on
 * the monolith under its own key (reverseKey), since one monolith follows several sources.
 */
export const REVERSE_STREAM: StreamNames = { slot: 'shardctl_reverse', publication: 'shardctl_reverse' };

/** The monolith's follow_position key of one shard's reverse stream. */
export const reverseKey = (shard: string) => `${REVERSE_STREAM.slot}:${shard}`;
