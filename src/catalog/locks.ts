/**
 * Every advisory lock shardctl takes, by server: the one place to read before adding a lock, so two
 * locks never share a key. A value here is part of the protocol between shardctl versions (and some
 * are written into SQL installed on shards: the guard's FENCE_LOCK), so never change one; add one.
 *
 * Bigint keys take pg_advisory_lock(bigint) (pg_locks shows them as classid = high 32 bits, objid =
 * low 32 bits, objsubid = 1). Classes take pg_advisory_lock(int4, int4) with hashtext(name) as the
 * second key (objsubid = 2), so they never collide with the bigint keys.
 */

// ---- on the catalog

/** "Shard": the run lock, one mutating run at a time; held by the run's catalog session (catalog.ts). */
export const LOCK_KEY = 0x5368_6172_64n;

/** The first runs that create or upgrade the catalog schema take turns (a transaction lock). */
export const SCHEMA_LOCK = LOCK_KEY + 1n;

/** One cutover, rollback, abandon or finish at a time (a session lock; the follower holds the run lock meanwhile). */
export const CUTOVER_LOCK = LOCK_KEY + 2n;

/** "2P": a cross-shard transaction's coordinator, with hashtext(gid) (catalog/transactions.ts). */
export const TX_LOCK_CLASS = 0x3250;

// ---- on the shards and the monolith (SQL that runs there, not the catalog's)

/** "ShardF": writers take it shared for their transaction, a fence change exclusive (fence/unit-guard.ts). */
export const FENCE_LOCK = 0x53_68_61_72_64_46n;

/** One installer of the write fence's guard at a time per server. */
export const GUARD_INSTALL_LOCK = FENCE_LOCK + 1n;

/** "ShardS": one creator of the stream state tables per server at a time (stream/positions.ts). */
export const STATE_LOCK = 0x53_68_61_72_64_53n;

/** "Shar": a follower on each shard, with hashtext(slot): one follower per slot per shard. */
export const FOLLOW_LOCK_CLASS = 0x53686172;

/** "Move": a move's applier on the new shard, with hashtext(slot): one applier per move slot. */
export const MOVE_LOCK_CLASS = 0x4d6f7665;

/** "Revs": a reverse follower on the monolith, with hashtext(shard's key): one per shard's stream. */
export const REVERSE_LOCK_CLASS = 0x52657673;
