import type { CrossShardTx } from '../../src/two-phase/commit.js';

/** A bump between Seoul and Busan users (location fixture), with a chosen id. */
export const insertBump = (tx: CrossShardTx, shard: string, id: number) =>
  tx.query(
    shard,
    `INSERT INTO bumps (id, user1_id, user2_id, latitude, longitude, h3_index, distance_m, confidence, is_cross_shard, bumped_at)
     VALUES ($1, 1, 2, 37.5665, 126.978, x'8c30e1d8c0b1dff'::bigint, 12.5, 0.9, true, '2026-01-01T00:00:00Z')`,
    [id],
  );
