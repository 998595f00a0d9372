import type { Config } from '../config/types.js';
import { withClient } from '../db/connect.js';
import { shardEndpoint } from '../db/endpoints.js';
import { quoteIdent } from '../db/ident.js';
import { problemsError } from '../errors.js';
import type { Model } from '../tables/model.js';

/**
 * What an online move needs on each old shard, checked before any move starts: logical decoding
 * (wal_level = logical), a free replication slot and WAL sender per move running at once from it,
 * and a role that may stream. Every missing item is reported at once with the statement that fixes
 * it, and the way round it (`--offline`), as exit 3. The stream applies updates and deletes by
 * primary key, so every sharded table needs one (a table in a publication without a replica
 * identity would even refuse the application's UPDATEs and DELETEs on the old shard).
 */
export async function checkOnlineMoves(
  config: Config,
  model: Model,
  /** one per stream: a group of moves from one shard to another (groups.ts) */
  moves: readonly { from: string; resumeAfter?: string }[],
  concurrency: number,
): Promise<void> {
  const perShard = new Map<string, { fresh: number; resumed: number }>();
  for (const m of moves) {
    // a fresh group needs a slot; one resumed while streaming has its own; others need none
    if (m.resumeAfter !== undefined && m.resumeAfter !== 'streaming') continue;
    const n = perShard.get(m.from) ?? { fresh: 0, resumed: 0 };
    if (m.resumeAfter === 'streaming') n.resumed++;
    else n.fresh++;
    perShard.set(m.from, n);
  }
  const problems: string[] = [];
  if (perShard.size) {
    for (const t of model.sharded) {
      if (!t.info.primaryKey.length) problems.push(`table ${t.name} has no primary key: an online move applies the unit's updates and deletes by key; fix: add a primary key`);
    }
  }
  await Promise.all(
    [...perShard].map(([id, n]) =>
      withClient(shardEndpoint(config, id), async (c) => {
        const s = (
          await c.query(
            `SELECT current_setting('wal_level') AS wal_level,
                    current_setting('max_replication_slots')::int AS max_slots,
                    (SELECT count(*) FROM pg_replication_slots)::int AS slots,
                    current_setting('max_wal_senders')::int AS max_senders,
                    (SELECT count(*) FROM pg_stat_replication)::int AS senders,
                    current_user AS role,
                    (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user) AS may_replicate`,
          )
        ).rows[0];
        const at = `shard ${id}`;
        const needs = Math.min(concurrency, n.fresh);
        if (s.wal_level !== 'logical') {
          problems.push(`${at}: wal_level is ${s.wal_level}; an online move streams the unit's changes from its old shard with logical decoding, which needs wal_level = logical; fix: ALTER SYSTEM SET wal_level = logical; then restart the server`);
        }
        if (needs > 0 && s.slots + needs > s.max_slots) {
          problems.push(`${at}: ${s.slots} of ${s.max_slots} replication slots are in use, an online move needs ${needs} more (one per group of units moving from it at once); fix: ALTER SYSTEM SET max_replication_slots = ${s.slots + needs}; then restart the server (or drop an unused slot, or lower --concurrency)`);
        }
        if (s.senders + Math.min(concurrency, n.fresh + n.resumed) > s.max_senders) {
          problems.push(`${at}: ${s.senders} of ${s.max_senders} WAL senders are in use; fix: ALTER SYSTEM SET max_wal_senders = ${s.senders + concurrency}; then restart the server`);
        }
        if (!s.may_replicate) problems.push(`${at}: role ${s.role} may not stream changes; fix: ALTER ROLE ${quoteIdent(s.role)} REPLICATION;`);
      }),
    ),
  );
  if (problems.length) {
    problems.sort();
    throw problemsError(
      'blocked',
      problems,
      `${problems.length} things stop online moves`,
      'fix them, or move with --offline (each unit refuses writes for its whole copy instead of a final catch-up)',
    );
  }
}
