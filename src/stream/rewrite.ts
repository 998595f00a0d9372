import type pg from 'pg';
import { blockedError } from '../errors.js';

/**
 * A table rewrite on the source (ALTER TABLE … ALTER COLUMN … TYPE … USING, SET ACCESS METHOD, SET
 * TABLESPACE, VACUUM FULL, CLUSTER) writes the table anew under a new relfilenode and sends none of
 * its rows through logical decoding: an ALTER that changed every value leaves the shards with the
 * old ones and nothing in the stream says so. The follower therefore records, with the copy, the
 * relfilenode of every configured table (each leaf partition of a partitioned one) and holds the
 * source to it: a changed or vanished one stops the follower and makes cutover refuse. VACUUM FULL,
 * CLUSTER and SET TABLESPACE change no value but cannot be told apart from a rewrite that does (the
 * WAL carries neither), so they count too: the only proof left is a fresh copy.
 */
export type RelFiles = Map<string, { table: string; node: string }>;

/** Each configured table (parameter `$param`, a text[] of names) and its leaf relations' relfilenodes. */
const relFilesSql = (param: number) =>
  `SELECT n.nspname || '.' || c.relname AS tbl, pn.nspname || '.' || pc.relname AS rel, pc.relfilenode::text AS node
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     CROSS JOIN LATERAL (SELECT t.relid FROM pg_partition_tree(c.oid) t WHERE t.isleaf UNION SELECT c.oid WHERE c.relkind <> 'p') p
     JOIN pg_class pc ON pc.oid = p.relid JOIN pg_namespace pn ON pn.oid = pc.relnamespace
    WHERE n.nspname || '.' || c.relname = ANY($${param}::text[])`;

/** Each configured table's storage (relation → its configured table and relfilenode). */
export async function relFiles(c: pg.ClientBase, tables: readonly string[]): Promise<RelFiles> {
  const r = await c.query(relFilesSql(1), [tables]);
  return new Map(r.rows.map((x) => [x.rel as string, { table: x.tbl as string, node: x.node as string }]));
}

/**
 * The follower's heartbeat message carries the tables' relfilenodes, read in the statement that
 * emits it: the follower compares them in the stream's own order, so a TRUNCATE (which changes the
 * relfilenode too) reaches it as the TRUNCATE it is, before any heartbeat that saw it.
 * `$param` is the text[] of configured tables.
 */
export const heartbeatContentSql = (param: number) =>
  `'heartbeat ' || coalesce((SELECT jsonb_object_agg(r.rel, r.node) FROM (${relFilesSql(param)}) AS r), '{}')::text`;

/** Throws (exit 3) when a heartbeat's relfilenodes (control.ts) show a table rewritten since the copy. */
export function assertHeartbeat(recorded: RelFiles, now: Record<string, string> | undefined): void {
  if (!now) return; // a heartbeat of a follower that does not check
  const error = rewriteError(recorded, new Map(Object.entries(now)));
  if (error) throw error;
}

/** Records the copy's relfilenodes on a shard (in its stream state, beside the position). */
export async function writeRelFiles(c: pg.ClientBase, slot: string, files: RelFiles): Promise<void> {
  await c.query('DELETE FROM shardctl.follow_relfiles WHERE slot = $1', [slot]);
  const rows = [...files];
  await c.query(
    `INSERT INTO shardctl.follow_relfiles (slot, rel, tbl, node) SELECT $1, r, t, n FROM unnest($2::text[], $3::text[], $4::text[]) AS x(r, t, n)`,
    [slot, rows.map(([r]) => r), rows.map(([, f]) => f.table), rows.map(([, f]) => f.node)],
  );
}

/** The copy's relfilenodes recorded on a shard; undefined for a window opened before they were recorded. */
export async function readRelFiles(c: pg.ClientBase, slot: string): Promise<RelFiles | undefined> {
  const r = await c.query('SELECT rel, tbl, node FROM shardctl.follow_relfiles WHERE slot = $1', [slot]);
  return r.rowCount ? new Map(r.rows.map((x) => [x.rel as string, { table: x.tbl as string, node: x.node as string }])) : undefined;
}

/** Throws (exit 3) when a table recorded at the copy was rewritten or dropped on the source since. */
export async function assertNotRewritten(source: pg.ClientBase, recorded: RelFiles): Promise<void> {
  const now = await relFiles(source, [...new Set([...recorded.values()].map((f) => f.table))]);
  const error = rewriteError(recorded, new Map([...now].map(([rel, f]) => [rel, f.node])));
  if (error) throw error;
}

function rewriteError(recorded: RelFiles, now: ReadonlyMap<string, string>) {
  const changed = new Set<string>();
  for (const [rel, f] of recorded) {
    if (now.get(rel) !== f.node) changed.add(rel === f.table ? f.table : `${f.table} (partition ${rel})`);
  }
  if (!changed.size) return undefined;
  const list = [...changed].sort();
  return blockedError(
    `source: table ${list.join(', ')} was rewritten on the source while following (ALTER TABLE … TYPE … USING, SET ACCESS METHOD, SET TABLESPACE, VACUUM FULL, CLUSTER, TRUNCATE or a dropped partition); a rewrite sends none of its rows through logical replication, so the shards cannot be proven to match it`,
    { hint: 'start over with a fresh copy: shardctl migrate --abandon, then shardctl migrate --follow (and run no VACUUM FULL or CLUSTER on configured tables while following)' },
  );
}

/** The window has no record of the copy's storage (opened by an older shardctl). */
export const noRelFilesError = () =>
  blockedError('the online migration has no record of its tables\' storage at the copy (it was opened by an older shardctl), so a table rewrite since cannot be ruled out', {
    hint: 'run shardctl migrate --follow with this version (it records the storage from then on), or start over: shardctl migrate --abandon, then shardctl migrate --follow',
  });

/** Cutover's check: the copy's record (on `shard`) against the source now; no record refuses too. */
export async function assertCopyStorage(source: pg.ClientBase, shard: pg.ClientBase, slot: string): Promise<void> {
  const has = await shard.query(`SELECT to_regclass('shardctl.follow_relfiles') IS NOT NULL AS ok`);
  const recorded = has.rows[0].ok ? await readRelFiles(shard, slot) : undefined;
  if (!recorded) throw noRelFilesError();
  await assertNotRewritten(source, recorded);
}
