/**
 * The two kinds of failure shardctl knows (after changesets' model):
 *  - a UserError is expected and already explained: one line for the user, an optional hint,
 *    and the exit code class it maps to. It is printed without a stack trace.
 *  - anything else is an internal bug: printed with its stack and a request to report it.
 * The engine throws; only the CLI's top level turns an error into an exit code.
 */

/** Exit codes of every command but `health` (SPEC.md "Contracts"). */
export const ExitCode = {
  ok: 0,
  /** finished, but something differs or failed */
  mismatch: 1,
  /** bad usage or configuration */
  usage: 2,
  /** could not proceed: unreachable server, lock held, catalog needs a decision */
  blocked: 3,
  interrupted: 130,
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export type UserErrorKind = 'usage' | 'config' | 'blocked' | 'interrupted';

const kindToExit: Record<UserErrorKind, ExitCodeValue> = {
  usage: ExitCode.usage,
  config: ExitCode.usage,
  blocked: ExitCode.blocked,
  interrupted: ExitCode.interrupted,
};

export class UserError extends Error {
  readonly kind: UserErrorKind;
  readonly hint?: string;
  /** More lines, e.g. every problem of an invalid config. */
  readonly details: readonly string[];

  constructor(kind: UserErrorKind, message: string, opts: { hint?: string; details?: string[]; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'UserError';
    this.kind = kind;
    this.hint = opts.hint;
    this.details = opts.details ?? [];
  }

  get exitCode(): ExitCodeValue {
    return kindToExit[this.kind];
  }
}

export const usageError = (message: string, hint?: string) => new UserError('usage', message, { hint });
export const blockedError = (message: string, opts: { hint?: string; details?: string[]; cause?: unknown } = {}) =>
  new UserError('blocked', message, opts);

/** One problem as the message, several as a count plus one detail line each. */
export function problemsError(kind: UserErrorKind, problems: string[], summary: string, hint?: string): UserError {
  return problems.length === 1
    ? new UserError(kind, problems[0]!, { hint })
    : new UserError(kind, summary, { details: problems, hint });
}

export function isUserError(e: unknown): e is UserError {
  return e instanceof UserError;
}
