import pg from 'pg';
import { blockedError, UserError } from '../errors.js';
import { passwordOf, redactText, redactUrl } from '../redact.js';
import { withPassword } from './password.js';
import { libpqUrl } from './conninfo.js';
import { connectionUrl } from '../config/url.js';
import { pgFailure } from './pg-error.js';
import { startupOptions } from './session.js';

/** What a connection is for, so every message can name it: `shard s2 (postgres://app:***@h:5432/pos)`. */
export interface Endpoint {
  readonly label: string;
  readonly url: string;
}

export const endpointName = (e: Endpoint) => `${e.label} (${redactUrl(e.url)})`;

export interface ConnectOptions {
  /** Give up connecting after this long (default 10 s). */
  timeoutMs?: number;
  /** Shown in pg_stat_activity. */
  applicationName?: string;
  /** Skip pinning session settings (only `health`, which reads server defaults, wants that). */
  raw?: boolean;
}

/**
 * Opens one client with the pinned session settings. Connection failures become a UserError
 * (exit 3) naming the endpoint, with the password scrubbed.
 */
export async function connect(e: Endpoint, opts: ConnectOptions = {}): Promise<pg.Client> {
  const url = await withPassword(e.url);
  const client = new pg.Client({
    connectionString: libpqUrl(url, endpointName(e)),
    connectionTimeoutMillis: opts.timeoutMs ?? 10_000,
    application_name: opts.applicationName ?? 'shardctl',
    options: opts.raw ? undefined : startupOptions(),
    // A peer that vanished (host down, network cut) is noticed in about a minute instead of the
    // kernel's two hours; the server side is set in session.ts.
    keepAlive: true,
    keepAliveInitialDelayMillis: 30_000,
  });
  // An idle client whose server goes away emits 'error'; without a listener Node would crash.
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw connectError(e, err, hasPassword(url));
  }
  return client;
}

const connectErrors = new WeakSet<UserError>();

/** True for the error `connect` throws when a server cannot be reached or refuses the session. */
export const isConnectError = (e: unknown): boolean => e instanceof UserError && connectErrors.has(e);

export function connectError(e: Endpoint, err: unknown, passwordGiven = true): UserError {
  const code = (err as { code?: string }).code;
  const text = (err as Error).message ?? String(err);
  // pg's wording when the server wants a password (SCRAM or md5) and the client has none
  const noPassword = !passwordGiven && /client password must be a string|password authentication failed/.test(text);
  const reason = noPassword ? 'the server asks for a password and none was found'
    : code === '28P01' ? 'password authentication failed'
    : code === '3D000' ? 'the database does not exist'
    : code === '28000' ? 'the server refused this role'
    : redactText(text, [passwordOf(e.url) ?? '']);
  const hint = noPassword
    ? `give it in PGPASSWORD or a line of the password file (PGPASSFILE, else ~/.pgpass: host:port:database:user:password), or as \${VAR} in the URL`
    : code === '28P01' ? 'check the password (PGPASSWORD, ~/.pgpass or the URL)' : undefined;
  const error = blockedError(`${endpointName(e)}: cannot connect: ${reason}`, { hint, cause: err });
  connectErrors.add(error);
  return error;
}

function hasPassword(url: string): boolean {
  try {
    return connectionUrl(url).password !== '';
  } catch {
    return true;
  }
}

/** Runs `fn` with a fresh client and always closes it. A server's error escaping `fn` names the endpoint (pgFailure). */
export async function withClient<T>(e: Endpoint, fn: (c: pg.Client) => Promise<T>, opts?: ConnectOptions): Promise<T> {
  const client = await connect(e, opts);
  try {
    return await fn(client);
  } catch (err) {
    throw pgFailure(err, e.label);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Runs `fn` in a transaction: COMMIT when it returns, ROLLBACK when it throws (the error is rethrown).
 * A broken connection makes the ROLLBACK fail too; the server then rolls back on its own.
 */
export async function withTransaction<T>(
  client: pg.ClientBase,
  fn: () => Promise<T>,
  opts: { isolation?: 'REPEATABLE READ' | 'READ COMMITTED'; readOnly?: boolean } = {},
): Promise<T> {
  const mode = [opts.isolation && `ISOLATION LEVEL ${opts.isolation}`, opts.readOnly && 'READ ONLY'].filter(Boolean).join(' ');
  await client.query(`BEGIN ${mode}`);
  try {
    const result = await fn();
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** Destroys a client without waiting for the server (a COPY that is stuck cannot be ended politely). */
export function destroy(client: pg.Client): void {
  const conn = (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection;
  conn?.stream?.destroy();
  client.end().catch(() => undefined);
}
