import { UserError } from '../errors.js';
import { redactText } from '../redact.js';

interface PgError {
  code?: string;
  detail?: string;
  hint?: string;
  message: string;
  severity?: string;
  schema?: string;
  table?: string;
  cause?: unknown;
}

const CONNECTION_LOST = ['57P01', '57P02', '57P03', '08006', '08003', '08000', 'ECONNRESET', 'ECONNREFUSED', 'EPIPE'];

/** True when the error (or the error it wraps) means the server went away (retry on a fresh connection, or stop with exit 3). */
export function isConnectionLoss(e: unknown): boolean {
  const err = e as PgError;
  if (CONNECTION_LOST.includes(err?.code ?? '') || /Connection terminated|connection.*closed|not queryable/i.test(err?.message ?? '')) return true;
  return err?.cause !== undefined && err.cause !== e && isConnectionLoss(err.cause);
}

/** An error a PostgreSQL server sent (it carries a SQLSTATE and a severity), as opposed to a bug. */
export function isPgError(e: unknown): boolean {
  const err = e as PgError;
  return typeof err?.code === 'string' && /^[0-9A-Z]{5}$/.test(err.code) && typeof err.severity === 'string';
}

/**
 * The one way a PostgreSQL error reaches the user: where it happened (shard, and the table when the
 * server names one), the server's message with its SQLSTATE, detail and hint, never a password.
 * A UserError passes through unchanged. Exit 3: the run could not proceed.
 */
export function describePgError(e: unknown, where: string): UserError {
  if (e instanceof UserError) return e;
  const err = e as PgError;
  const code = err.code ? ` [${err.code}]` : '';
  const table = err.table && !where.includes(err.table) ? `, table ${err.schema ? `${err.schema}.` : ''}${err.table}` : '';
  const details = [err.detail && `detail: ${err.detail}`].filter((x): x is string => Boolean(x)).map((d) => redactText(d));
  return new UserError('blocked', `${where}${table}: ${redactText(err.message ?? String(e))}${code}`, {
    details,
    hint: err.hint ? redactText(err.hint) : undefined,
    cause: e,
  });
}

/** `e` as the user should see it when it is a server's error or a lost connection; anything else (a bug) unchanged. */
export function pgFailure(e: unknown, where: string): unknown {
  return isPgError(e) || (!(e instanceof UserError) && isConnectionLoss(e)) ? describePgError(e, where) : e;
}

/** One line for a result list (a batch or a move that failed): the message, its detail and hint. */
export function failureText(e: unknown, where: string): string {
  const f = pgFailure(e, where);
  if (!(f instanceof UserError)) return redactText(f instanceof Error ? f.message : String(f));
  return redactText([f.message, ...f.details, ...(f.hint ? [`hint: ${f.hint}`] : [])].join('; '));
}
