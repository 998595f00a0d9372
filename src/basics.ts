/**
 * The engine's light door for the CLI: error kinds, exit codes, units, redaction — files with no driver,
 * parser or H3 behind them. commands/ imports these statically and everything else from index.ts with
 * `await import()` inside the action that needs it, so `--version`, `--help` and a usage error start
 * without loading the engine (test/unit/cli-startup.test.ts). index.ts exports the same names.
 */
export { ExitCode, UserError, isUserError, usageError } from './errors.js';
export { redactText, redactUrl } from './redact.js';
export { parseDuration, parseSize, parseRatio, type Duration } from './config/units.js';
export { pgFailure } from './db/pg-error.js';
