import { UserError } from '../errors.js';
import { redactText } from '../redact.js';

interface PgError {
  code?: string;
  detail?: string;
  hint?: string;
  message: string;
  where?: string;
}

const CONNECTION_LOST = ['57P01', '57P02', '57P03', '08006', '08003', '08000', 'ECONNRESET', 'ECONNREFUSED', 'EPIPE'];

/** True when the error means the server went away (retry on a fresh connection, or stop with exit 3). */
export function isConnectionLoss(e: unknown): boolean {
  const err = e as PgError;
  return CONNECTION_LOST.includes(err?.code ?? '') || /Connection terminated|connection.*closed|not queryable/i.test(err?.message ?? '');
}

/**
 * A Postgres error as the user should see it: where it happened (shard, table), the server's
 * message with its SQLSTATE, detail and hint, and never a password.
 */
export function describePgError(e: unknown, where: string): UserError {
  if (e instanceof UserError) return e;
  const err = e as PgError;
  const code = err.code ? ` [${err.code}]` : '';
  const details = [err.detail && `detail: ${err.detail}`].filter((x): x is string => Boolean(x)).map((d) => redactText(d));
  return new UserError('blocked', `${where}: ${redactText(err.message ?? String(e))}${code}`, {
    details,
    hint: err.hint ? redactText(err.hint) : undefined,
    cause: e,
  });
}
