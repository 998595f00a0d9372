import chalk from 'chalk';
import { ExitCode, isUserError } from '../../src/basics.js';
import { pgFailure, redactText } from '../../src/basics.js';

/**
 * The one place an error becomes output and an exit code. A UserError was expected: one line, its
 * details and hint, no stack. Anything else is a bug: the stack, and a request to report it.
 */
export function reportError(error: unknown, json: boolean): number {
  // A server's error the engine did not place is still the server's, not a bug.
  const e = pgFailure(error, 'PostgreSQL');
  if (isUserError(e)) {
    if (json) {
      const error = { kind: e.kind, message: redactText(e.message), details: e.details.map((d) => redactText(d)), hint: e.hint && redactText(e.hint) };
      process.stdout.write(`${JSON.stringify({ ok: false, error })}\n`);
    }
    process.stderr.write(`${chalk.red('shardctl: error:')} ${redactText(e.message)}\n`);
    for (const d of e.details) process.stderr.write(`  ${redactText(d)}\n`);
    if (e.hint) process.stderr.write(`${chalk.dim('hint:')} ${redactText(e.hint)}\n`);
    return e.exitCode;
  }
  const err = e instanceof Error ? e : new Error(String(e));
  process.stderr.write(`${chalk.red('shardctl: internal error:')} ${redactText(err.stack ?? err.message)}\n`);
  process.stderr.write('This is a bug in shardctl. Please report it with the command you ran and the output above.\n');
  return ExitCode.blocked;
}
