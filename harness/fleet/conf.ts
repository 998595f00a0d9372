// Each server's own settings live in `<data>/shardctl.conf`, included at the end of the
// template's postgresql.conf, so they override initdb's defaults and a data-directory copy
// (replica) carries them along and can be re-read and amended.
import { promises as fsp } from 'node:fs';
import path from 'node:path';

export const CONF_FILE = 'shardctl.conf';
export const INCLUDE_LINE = `include_if_exists = '${CONF_FILE}'`;

/**
 * Defaults for every fleet server. Durability against an OS crash is traded for speed (fsync and
 * full_page_writes off: a test fleet is thrown away after a machine crash), while everything
 * streaming replication needs stays on. pg_backup_start forces full-page writes during a base
 * backup, so full_page_writes=off does not make replica creation unsafe.
 * synchronous_commit stays ON: tests simulate a dead server with an immediate stop, and with it
 * off, commits of the last few hundred ms (still in WAL buffers) silently vanish on restart.
 * With fsync=off a commit costs a write(), not a flush, so it is cheap anyway.
 */
export function baseSettings(): Record<string, string> {
  return {
    listen_addresses: '127.0.0.1',
    max_connections: '100',
    shared_buffers: '64MB',
    fsync: 'off',
    synchronous_commit: 'on',
    full_page_writes: 'off',
    // logical: rebalance moves units online, streaming from the old shard (a slot there)
    wal_level: 'logical',
    max_wal_senders: '10',
    max_replication_slots: '10',
    wal_keep_size: '64MB',
    hot_standby: 'on',
    // Two-phase commit (seed 002) needs this > 0; a standby needs >= the primary's value.
    max_prepared_transactions: '20',
    logging_collector: 'off',
    // Deterministic regardless of the host's zone; per-server overrides change it.
    TimeZone: 'UTC',
    lc_messages: 'C',
  };
}

/** A GUC value as a quoted postgresql.conf string (valid for every type). */
export function quoteGuc(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/** A libpq conninfo value (primary_conninfo). */
export function quoteConninfo(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

function assertName(name: string): void {
  if (!/^[A-Za-z_][A-Za-z0-9_.]*$/.test(name)) throw new Error(`invalid setting name: ${JSON.stringify(name)}`);
}

/**
 * Merge layers left to right. GUC names are case-insensitive, so a later `timezone` must replace
 * an earlier `TimeZone` rather than sit next to it.
 */
export function mergeSettings(...layers: (Record<string, string> | undefined)[]): Record<string, string> {
  const out = new Map<string, [string, string]>();
  for (const layer of layers) {
    for (const [k, v] of Object.entries(layer ?? {})) {
      assertName(k);
      out.set(k.toLowerCase(), [k, String(v)]);
    }
  }
  return Object.fromEntries([...out.values()]);
}

export async function writeConf(dataDir: string, settings: Record<string, string>): Promise<void> {
  const lines = ['# written by shardctl fleet; overrides postgresql.conf'];
  for (const [k, v] of Object.entries(settings)) {
    assertName(k);
    if (/[\r\n]/.test(v)) throw new Error(`setting ${k} must not contain a line break`);
    lines.push(`${k} = ${quoteGuc(v)}`);
  }
  // May hold primary_conninfo with a password: owner-only.
  await fsp.writeFile(path.join(dataDir, CONF_FILE), lines.join('\n') + '\n', { mode: 0o600 });
}

/** Read back what writeConf wrote (only its own simple `name = 'value'` format). */
export async function readConf(dataDir: string): Promise<Record<string, string>> {
  let text: string;
  try {
    text = await fsp.readFile(path.join(dataDir, CONF_FILE), 'utf8');
  } catch {
    return {};
  }
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z_][A-Za-z0-9_.]*) = '((?:[^'\\]|''|\\.)*)'$/.exec(line);
    if (!m) continue;
    out[m[1]!] = m[2]!.replace(/''/g, "'").replace(/\\(.)/g, '$1');
  }
  return out;
}
