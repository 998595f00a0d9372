import type pg from 'pg';
import { connect, destroy, type Endpoint } from '../db/connect.js';
import { passwordOf, redactText } from '../redact.js';

export type Timed<T> =
  | { readonly ok: true; readonly value: T; readonly connectMs: number; readonly queryMs: number; readonly totalMs: number }
  | {
      readonly ok: false;
      /** true when the connection was made but the queries failed (the server is up). */
      readonly connected: boolean;
      readonly timedOut: boolean;
      /** Short, password-free: `connection refused`, `timed out after 2000 ms while connecting`. */
      readonly reason: string;
      readonly connectMs?: number;
      readonly totalMs: number;
    };

class Expired extends Error {}

/**
 * Connects to `endpoint` (server defaults: no pinned session settings) and runs `fn`, the whole
 * bounded by `timeoutMs` — a host that accepts TCP and never answers (a blackhole, a hung server)
 * cannot stall the caller: at the deadline the socket is destroyed and a result comes back. Never
 * throws; the client is always closed.
 */
export async function timedSession<T>(endpoint: Endpoint, timeoutMs: number, fn: (c: pg.Client) => Promise<T>): Promise<Timed<T>> {
  const t0 = performance.now();
  let client: pg.Client | undefined;
  let connectMs: number | undefined;
  let settled = false;
  const work = (async () => {
    const c = await connect(endpoint, { timeoutMs, raw: true, applicationName: 'shardctl health' });
    if (settled) {
      destroy(c); // connected just after the deadline: nobody is waiting for it
      throw new Expired();
    }
    client = c;
    connectMs = performance.now() - t0;
    const q0 = performance.now();
    const value = await fn(c);
    return { value, queryMs: performance.now() - q0 };
  })();
  work.catch(() => undefined); // may reject after the race is decided
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Expired()), timeoutMs);
  });
  let failed = true;
  try {
    const { value, queryMs } = await Promise.race([work, expired]);
    failed = false;
    return { ok: true, value, connectMs: connectMs!, queryMs, totalMs: performance.now() - t0 };
  } catch (err) {
    const connected = connectMs !== undefined;
    const timedOut = err instanceof Expired || isConnectTimeout(err);
    const reason = timedOut
      ? `timed out after ${timeoutMs} ms while ${connected ? 'querying' : 'connecting'}`
      : reasonOf(err, endpoint.url);
    return { ok: false, connected, timedOut, reason, connectMs, totalMs: performance.now() - t0 };
  } finally {
    settled = true;
    clearTimeout(timer);
    if (client) {
      if (failed) destroy(client);
      else await client.end().catch(() => undefined);
    }
  }
}

const CODES: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host not found (DNS)',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'timed out',
  '28P01': 'password authentication failed',
  '28000': 'the server refused this role (pg_hba.conf)',
  '3D000': 'the database does not exist',
  '53300': 'too many connections',
};

/** connect() wraps the driver's error as a UserError with a `cause`; the cause says what happened. */
type ErrLike = { cause?: unknown; code?: string; message?: string; errors?: unknown[] };
function rootOf(err: unknown): ErrLike {
  let e = (err ?? {}) as ErrLike;
  if (typeof e === 'object' && e.cause && typeof e.cause === 'object') e = e.cause as ErrLike;
  // `localhost` tries ::1 and 127.0.0.1 (Node's happy eyeballs): an AggregateError of both.
  if (!e.code && Array.isArray(e.errors) && e.errors[0] && typeof e.errors[0] === 'object') e = e.errors[0] as ErrLike;
  return e;
}

function isConnectTimeout(err: unknown): boolean {
  return /connection timeout|timeout expired/i.test(rootOf(err).message ?? '');
}

export function reasonOf(err: unknown, url: string): string {
  const root = rootOf(err);
  const known = root.code ? CODES[root.code] : undefined;
  if (known) return known;
  const text = redactText(root.message || String(err), [passwordOf(url) ?? '']).split('\n')[0]!;
  return text || 'failed';
}
