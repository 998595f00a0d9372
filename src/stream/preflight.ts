import type pg from 'pg';
import { problemsError } from '../errors.js';
import { quoteIdent } from '../db/ident.js';
import type { StreamNames } from './names.js';
import { identityProblems, replicaIdentities } from './identity.js';

/**
 * What logical decoding needs on the source, checked before anything is created. Every missing
 * item is reported at once, each with the statement that fixes it (exit 3).
 */
export async function checkSourceForFollow(
  c: pg.ClientBase,
  tables: readonly string[],
  names: StreamNames,
  label = 'source',
  /** tables that reach their unit through a parent row (`via`): a row of theirs needs a primary key to be found */
  via: ReadonlySet<string> = new Set(),
): Promise<void> {
  const problems: string[] = [];
  const s = (
    await c.query(
      `SELECT current_setting('wal_level') AS wal_level,
              current_setting('max_replication_slots')::int AS max_slots,
              (SELECT count(*) FROM pg_replication_slots)::int AS slots,
              EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1) AS ours,
              current_setting('max_wal_senders')::int AS max_senders,
              (SELECT count(*) FROM pg_stat_replication)::int AS senders,
              current_user AS role,
              (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user) AS may_replicate`,
      [names.slot],
    )
  ).rows[0];
  if (s.wal_level !== 'logical') {
    problems.push(`${label}: wal_level is ${s.wal_level}, logical decoding needs logical; fix: ALTER SYSTEM SET wal_level = logical; then restart the server`);
  }
  if (!s.ours && s.slots >= s.max_slots) {
    problems.push(`${label}: all ${s.max_slots} replication slots are in use; fix: ALTER SYSTEM SET max_replication_slots = ${s.max_slots + 1}; then restart the server (or drop an unused slot)`);
  }
  if (s.senders >= s.max_senders) {
    problems.push(`${label}: all ${s.max_senders} WAL senders are in use; fix: ALTER SYSTEM SET max_wal_senders = ${s.max_senders + 1}; then restart the server`);
  }
  if (!s.may_replicate) problems.push(`${label}: role ${s.role} may not stream changes; fix: ALTER ROLE ${quoteIdent(s.role)} REPLICATION;`);
  problems.push(...identityProblems(await replicaIdentities(c, tables), label, via));
  if (problems.length) {
    throw label === 'source'
      ? problemsError('blocked', problems, `source: ${problems.length} things stop an online migration`, 'fix them on the source, then run migrate --follow again')
      : problemsError('blocked', problems, `${label}: ${problems.length} things stop a reverse stream`, `fix them on ${label}, or cut over without --reverse`);
  }
}
