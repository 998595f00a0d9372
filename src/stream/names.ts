import type { StreamNames } from '../catalog/online.js';

export type { StreamNames };

/**
 * The replication slot and publication of an online migration. One per source database: a second
 * `migrate --follow` resumes the first. (Online rebalance moves will name theirs per move.)
 */
export const MIGRATION_STREAM: StreamNames = { slot: 'shardctl_migrate', publication: 'shardctl_migrate' };

/** Prefix of the logical decoding messages shardctl emits on the source (heartbeats, cutover barrier, stop). */
export const MESSAGE_PREFIX = 'shardctl';
