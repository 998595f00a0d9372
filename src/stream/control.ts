import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { lsn, type Lsn } from '../db/lsn.js';
import { heartbeatContentSql } from './rewrite.js';

/**
 * The follower's control protocol: transactional logical decoding messages (prefix MESSAGE_PREFIX)
 * written on a stream's source. Being transactional, each reaches the stream's reader in commit
 * order, after every transaction that committed before it:
 *   stop        the follower flushes and exits 0 (cutover ends the forward stream, rollback the reverse one)
 *   barrier     the follower flushes at once: once its position passes the message, every earlier
 *               commit is applied (cutover and rollback wait for it behind their fence)
 *   tag         a unit move's own barrier (`move <slot> <uuid>`), unique per wait
 *   heartbeat   about every second: gives an idle stream a commit to flush at; with `relFiles`, the
 *               source's relfilenodes read in the same statement (rewrite.ts)
 * This module is the only one that writes or reads their text.
 */
export type ControlMessage =
  | { kind: 'stop' }
  | { kind: 'barrier' }
  | { kind: 'tag'; tag: string }
  | { kind: 'heartbeat'; relFiles?: Record<string, string> };

/** The messages a command sends (a heartbeat is written with the source's relfilenodes: `emitHeartbeat`). */
export type SentControl = Exclude<ControlMessage, { kind: 'heartbeat' }>;

/** Prefix of every message shardctl writes on a source (the decoder hands over other prefixes too). */
export const MESSAGE_PREFIX = 'shardctl';

const HEARTBEAT = 'heartbeat';
const TAG = 'move ';

/** A fresh tag for a move's barrier on the stream of `slot`. */
export const moveTag = (slot: string): Extract<ControlMessage, { kind: 'tag' }> => ({ kind: 'tag', tag: `${TAG}${slot} ${randomUUID()}` });

function contentOf(m: SentControl): string {
  return m.kind === 'tag' ? m.tag : m.kind;
}

/** Writes `m` on the source `c` is connected to; returns the WAL position of the message. */
export async function sendControl(c: pg.ClientBase, m: SentControl): Promise<Lsn> {
  const r = await c.query(`SELECT pg_logical_emit_message(true, $1, $2)::text AS lsn`, [MESSAGE_PREFIX, contentOf(m)]);
  return lsn(r.rows[0].lsn);
}

/**
 * Writes a heartbeat (with the relfilenodes of `tables`, configured table names, when given);
 * returns the source's current WAL position, read in the same statement.
 */
export async function emitHeartbeat(c: pg.ClientBase, tables?: readonly string[]): Promise<Lsn> {
  const r = tables
    ? await c.query(`SELECT pg_logical_emit_message(true, $1, ${heartbeatContentSql(2)}), pg_current_wal_lsn()::text AS now`, [MESSAGE_PREFIX, tables])
    : await c.query(`SELECT pg_logical_emit_message(true, $1, '${HEARTBEAT}'), pg_current_wal_lsn()::text AS now`, [MESSAGE_PREFIX]);
  return lsn(r.rows[0].now);
}

/**
 * A decoded message as a control message; undefined for another prefix or content this version does
 * not know (ignored, as before). Throws on a heartbeat whose relfilenodes are not JSON.
 */
export function parseControl(prefix: string, content: string): ControlMessage | undefined {
  if (prefix !== MESSAGE_PREFIX) return undefined;
  if (content === 'stop' || content === 'barrier') return { kind: content };
  if (content.startsWith(TAG)) return { kind: 'tag', tag: content };
  if (content === HEARTBEAT) return { kind: 'heartbeat' };
  if (content.startsWith(`${HEARTBEAT} {`)) return { kind: 'heartbeat', relFiles: JSON.parse(content.slice(HEARTBEAT.length + 1)) as Record<string, string> };
  if (content.startsWith(HEARTBEAT)) return { kind: 'heartbeat' };
  return undefined;
}
