/** What `migrate --follow` reports once the copy is done (the copy itself reports MigrateEvents). */
export type FollowEvent =
  | { type: 'follow-start'; slot: string; from: string }
  | {
      type: 'follow-progress';
      /** the source position every shard has committed */
      appliedLsn: string;
      /** WAL bytes between the source's current position and appliedLsn */
      lagBytes: number | null;
      /** seconds since the newest source commit the shards hold (heartbeats commit every second) */
      lagSeconds: number | null;
      changesPerSecond: number;
      /** row changes of the source this run has applied (an INSERT, UPDATE or DELETE each, whatever it took on the shards) */
      sourceChanges: number;
      /** the most source changes the follower held in memory at once since the last report (bounded, however large a source transaction) */
      heldChanges: number;
      /** changed rows proven (and removed from the record cutover re-proves) by this run's prover (online/prover.ts) */
      provenRows: number;
      /** per shard: `statements` counts the data statements sent (a batch of rows is one), so a test can see the batching */
      shards: { shard: string; changes: number; changesPerSecond: number; statements: number }[];
    }
  | { type: 'follow-warning'; message: string }
  | { type: 'follow-stop'; reason: 'cutover' | 'interrupted' | 'error'; appliedLsn: string; message?: string };

export type FollowEventSink = (e: FollowEvent) => void;
