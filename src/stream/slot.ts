import pg from 'pg';
import { lsn, parseLsn, type Lsn } from '../db/lsn.js';
import { connectError, endpointName, type Endpoint } from '../db/connect.js';
import { libpqUrl } from '../db/conninfo.js';
import { blockedError } from '../errors.js';
import { quoteIdent, quoteTable } from '../db/ident.js';
import { withPassword } from '../db/password.js';
import { startupOptions } from '../db/session.js';
import type { StreamNames } from './names.js';

/**
 * A replication connection (`replication: 'database'`): it speaks the walsender's commands
 * (CREATE_REPLICATION_SLOT, START_REPLICATION). Session settings are pinned as on every shardctl
 * connection, because pgoutput prints column values with the walsender's DateStyle, TimeZone,
 * extra_float_digits and bytea_output.
 */
export async function replicationConfig(source: Endpoint): Promise<pg.ClientConfig> {
  return { connectionString: libpqUrl(await withPassword(source.url), endpointName(source)), replication: 'database', options: startupOptions(), application_name: 'shardctl follow' } as pg.ClientConfig;
}

export async function connectReplication(source: Endpoint): Promise<pg.Client> {
  const c = new pg.Client(await replicationConfig(source));
  c.on('error', () => undefined);
  try {
    await c.connect();
  } catch (e) {
    await c.end().catch(() => undefined);
    throw connectError(source, e);
  }
  return c;
}

/**
 * The publication carries exactly the configured tables (created, or brought in line with the
 * config). A partitioned table's changes are published as the partitioned table's own
 * (publish_via_partition_root): the shards hold the same partitioned table, and their own
 * partitions place each row, so a partition's name never reaches the follower.
 */
export async function ensurePublication(c: pg.ClientBase, names: StreamNames, tables: readonly string[]): Promise<void> {
  const list = tables.map(quoteTable).join(', ');
  const exists = await c.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [names.publication]);
  if (exists.rowCount) {
    await c.query(`ALTER PUBLICATION ${quoteIdent(names.publication)} SET TABLE ${list}`);
    await c.query(`ALTER PUBLICATION ${quoteIdent(names.publication)} SET (${VIA_ROOT} = true)`);
  } else await c.query(`CREATE PUBLICATION ${quoteIdent(names.publication)} FOR TABLE ${list} WITH (${VIA_ROOT} = true)`);
}

const VIA_ROOT = 'publish_via_partition_root';

/**
 * A window opened by an older shardctl has a publication that publishes a partition's changes under
 * the partition's name, which the follower cannot apply. Changing the option now would not help:
 * the slot decodes what is already in the WAL with the publication as it was then. Only a fresh
 * copy (with a new publication) gets out.
 */
export async function checkPublication(c: pg.ClientBase, names: StreamNames, tables: readonly string[]): Promise<void> {
  const r = await c.query(
    `SELECT string_agg(n.nspname || '.' || t.relname, ', ' ORDER BY 1) AS partitioned
       FROM pg_publication p, pg_class t JOIN pg_namespace n ON n.oid = t.relnamespace
      WHERE p.pubname = $1 AND NOT p.pubviaroot AND t.relkind = 'p' AND n.nspname || '.' || t.relname = ANY($2::text[])`,
    [names.publication, tables],
  );
  const partitioned = r.rows[0]?.partitioned as string | null;
  if (partitioned) {
    throw blockedError(`source: the publication ${names.publication} of this online migration was created by an older shardctl without ${VIA_ROOT}, so the changes of the partitioned table(s) ${partitioned} reach the follower under their partitions' names and cannot be applied`, {
      hint: 'start over with a fresh copy: shardctl migrate --abandon, then shardctl migrate --follow',
    });
  }
}

export interface CreatedSlot {
  /** the replication connection that exported the snapshot: keep it open (and idle) while the copy reads */
  readonly conn: pg.Client;
  /** the WAL position the stream starts after: the copy's snapshot shows every transaction committed before it */
  readonly consistentLsn: Lsn;
  readonly snapshot: string;
}

/** Creates the logical slot (pgoutput) and exports its snapshot, for the bulk copy to read in. */
export async function createSlot(source: Endpoint, names: StreamNames): Promise<CreatedSlot> {
  const conn = await connectReplication(source);
  try {
    const r = await conn.query(`CREATE_REPLICATION_SLOT ${quoteIdent(names.slot)} LOGICAL pgoutput (SNAPSHOT 'export')`);
    const row = r.rows[0] as { consistent_point: string; snapshot_name: string };
    return { conn, consistentLsn: lsn(row.consistent_point), snapshot: row.snapshot_name };
  } catch (e) {
    await conn.end().catch(() => undefined);
    throw e;
  }
}

export interface SlotState {
  readonly active: boolean;
  readonly activePid: number | null;
  readonly confirmedLsn: Lsn | null;
  readonly retainedBytes: number | null;
}

export async function slotState(c: pg.ClientBase, names: StreamNames): Promise<SlotState | undefined> {
  const r = await c.query(
    `SELECT active, active_pid, confirmed_flush_lsn::text AS confirmed,
            pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::float8 AS retained
       FROM pg_replication_slots WHERE slot_name = $1`,
    [names.slot],
  );
  const s = r.rows[0];
  return s ? { active: s.active, activePid: s.active_pid, confirmedLsn: parseLsn(s.confirmed), retainedBytes: s.retained } : undefined;
}

/** Drops the slot (ending the walsender that streams from it, if any) and the publication. Idempotent. */
export async function dropStream(c: pg.ClientBase, names: StreamNames): Promise<{ slot: boolean; publication: boolean }> {
  const s = await slotState(c, names);
  if (s?.activePid) {
    await c.query('SELECT pg_terminate_backend($1)', [s.activePid]);
    // the walsender releases the slot as it exits
    for (let i = 0; i < 100 && (await slotState(c, names))?.active; i++) await new Promise((r) => setTimeout(r, 50));
  }
  if (s) await c.query('SELECT pg_drop_replication_slot($1)', [names.slot]);
  const p = await c.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [names.publication]);
  if (p.rowCount) await c.query(`DROP PUBLICATION ${quoteIdent(names.publication)}`);
  return { slot: Boolean(s), publication: Boolean(p.rowCount) };
}
