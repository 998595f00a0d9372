import type { Command, Option } from 'commander';

/**
 * Every flag has an environment twin, SHARDCTL_<FLAG> (`--batch-rows` ↔ SHARDCTL_BATCH_ROWS,
 * `--no-verify` ↔ SHARDCTL_NO_VERIFY). Precedence: flags > SHARDCTL_* > config file > defaults: a
 * twin fills an option only when the command line did not give it, and it is parsed and checked
 * exactly as the flag would be. Twins are derived from the declared options, so a new flag gets
 * one without more code.
 */
export const envName = (o: Option): string => `SHARDCTL_${(o.long ?? '').replace(/^--/, '').replace(/-/g, '_').toUpperCase()}`;

const TRUE = new Set(['1', 'true', 'yes', 'on']);
const FALSE = new Set(['0', 'false', 'no', 'off', '']);

/** Fills the action command's options from their twins; a bad value is a usage error naming the variable. */
export function applyEnvTwins(cmd: Command, env: NodeJS.ProcessEnv = process.env): void {
  for (const o of cmd.options as Option[]) {
    const name = envName(o);
    const raw = env[name];
    const key = o.attributeName();
    if (raw === undefined || !o.long || o.long === '--help' || o.long === '--version') continue;
    const source = cmd.getOptionValueSource(key);
    if (source === 'cli' || source === 'env') continue; // flags win; commander's own twins stay as they are
    try {
      const value = parse(o, raw);
      if (value !== LEAVE) cmd.setOptionValueWithSource(key, value, 'env');
    } catch (e) {
      cmd.error(`error: ${name}=${JSON.stringify(raw)} is invalid: ${(e as Error).message}`, { code: 'shardctl.envTwin', exitCode: 2 });
    }
  }
}

const LEAVE = Symbol('leave');

/** A value as the flag would take it, or LEAVE (a switch's twin saying "not given"). */
function parse(o: Option, raw: string): unknown {
  if (!o.required && !o.optional) {
    // A switch: the twin says whether it is given. `--no-x` given means x is false.
    const word = raw.trim().toLowerCase();
    if (TRUE.has(word)) return !o.negate;
    if (FALSE.has(word)) return LEAVE;
    throw new Error(`expected 1/true/yes or 0/false/no`);
  }
  if (o.argChoices && !o.argChoices.includes(raw)) throw new Error(`allowed: ${o.argChoices.join(', ')}`);
  // Parsers with a running value (comma lists) start from scratch: the twin replaces a default.
  return o.parseArg ? o.parseArg(raw, undefined as unknown as never) : raw;
}
