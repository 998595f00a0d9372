import type { Command, Option } from 'commander';

/**
 * Environment twins, for settings only: where the config is, how output looks, how much runs at once,
 * how long to wait. An action (--apply, --follow, --force, --abandon, --finish, --reverse …) is never
 * taken from the environment: a variable exported for one command must not make another promote a
 * replica or start a stream. A setting whose meaning differs between commands has one twin per
 * meaning (`--concurrency` is batches for migrate, checksum queries for verify, moves for rebalance).
 * Precedence: flags > SHARDCTL_* > config file > defaults; a twin is parsed and checked exactly as
 * its flag, and `--help` shows it next to the flag.
 */
const TWINS: Readonly<Record<string, string>> = {
  '* --config': 'SHARDCTL_CONFIG',
  '* --json': 'SHARDCTL_JSON',
  '* --quiet': 'SHARDCTL_QUIET',
  'migrate --concurrency': 'SHARDCTL_MIGRATE_CONCURRENCY',
  'migrate --batch-rows': 'SHARDCTL_BATCH_ROWS',
  'migrate --throttle-lag': 'SHARDCTL_THROTTLE_LAG',
  'migrate --throttle-lag-bytes': 'SHARDCTL_THROTTLE_LAG_BYTES',
  'migrate --throttle-load': 'SHARDCTL_THROTTLE_LOAD',
  'verify --concurrency': 'SHARDCTL_VERIFY_CONCURRENCY',
  'rebalance --concurrency': 'SHARDCTL_REBALANCE_CONCURRENCY',
  'add-shard --concurrency': 'SHARDCTL_REBALANCE_CONCURRENCY',
  'remove-shard --concurrency': 'SHARDCTL_REBALANCE_CONCURRENCY',
  'cutover --timeout': 'SHARDCTL_CUTOVER_TIMEOUT',
  // how long a moving unit's old shard may stay fenced: one meaning for every command that moves units
  'rebalance --timeout': 'SHARDCTL_MOVE_TIMEOUT',
  'pin --timeout': 'SHARDCTL_MOVE_TIMEOUT',
  'unpin --timeout': 'SHARDCTL_MOVE_TIMEOUT',
  'set --timeout': 'SHARDCTL_MOVE_TIMEOUT',
  'add-shard --timeout': 'SHARDCTL_MOVE_TIMEOUT',
  'remove-shard --timeout': 'SHARDCTL_MOVE_TIMEOUT',
  'rollback --timeout': 'SHARDCTL_ROLLBACK_TIMEOUT',
  'health --timeout': 'SHARDCTL_HEALTH_TIMEOUT',
};

/** The twin of a command's option, or undefined for an action flag (which has none). */
export function twinOf(cmd: Command, o: Option): string | undefined {
  if (!o.long) return undefined;
  return TWINS[`${cmd.name()} ${o.long}`] ?? TWINS[`* ${o.long}`];
}

/** The variable a twin-less flag would have had; set in the environment, it is ignored with a warning. */
const legacyName = (o: Option): string => `SHARDCTL_${(o.long ?? '').replace(/^--/, '').replace(/-/g, '_').toUpperCase()}`;

/** Shows each twin in `--help`: `--timeout <duration>  … [env: SHARDCTL_CUTOVER_TIMEOUT]`. */
export function describeTwins(program: Command): void {
  const all = (c: Command): Command[] => [c, ...c.commands.flatMap(all)];
  for (const cmd of all(program)) {
    for (const o of cmd.options as Option[]) {
      const name = twinOf(cmd, o);
      if (name && !o.description.includes(name)) o.description = `${o.description} [env: ${name}]`;
    }
  }
}

const TRUE = new Set(['1', 'true', 'yes', 'on']);
const FALSE = new Set(['0', 'false', 'no', 'off', '']);

/** Which options of the running command came from a twin (attribute name → variable), for messages. */
let fromEnv = new Map<string, string>();

/**
 * How the user gave an option, for a message about it: `--json`, or `SHARDCTL_JSON=1` when the value
 * came from the environment (a conflict must name what to unset).
 */
export function given(attribute: string, flag: string): string {
  const name = fromEnv.get(attribute);
  return name ? `${name}=${process.env[name]}` : flag;
}

/** True when the option's value came from its environment twin, not from the command line. */
export const viaEnv = (attribute: string): boolean => fromEnv.has(attribute);

/**
 * Fills the action command's options from their twins; a bad value is a usage error naming the
 * variable. A variable that names an action flag, or an old twin that is now per command, is
 * ignored with a warning saying what to use instead.
 */
export function applyEnvTwins(cmd: Command, env: NodeJS.ProcessEnv = process.env, warn: (s: string) => void = (s) => process.stderr.write(`warning: ${s}\n`)): void {
  fromEnv = new Map();
  for (const o of cmd.options as Option[]) {
    if (!o.long || o.long === '--help' || o.long === '--version') continue;
    const name = twinOf(cmd, o);
    const legacy = legacyName(o);
    if (legacy !== name && env[legacy] !== undefined) {
      warn(name
        ? `${legacy} is ignored: use ${name} (it means ${o.long} of shardctl ${cmd.name()})`
        : `${legacy} is ignored: ${o.long} has no environment variable (an action is given on the command line)`);
    }
    const raw = name === undefined ? undefined : env[name];
    if (name === undefined || raw === undefined) continue;
    const key = o.attributeName();
    const source = cmd.getOptionValueSource(key);
    if (source === 'cli' || source === 'env') continue; // flags win; commander's own twins stay as they are
    try {
      const value = parse(o, raw);
      if (value !== LEAVE) {
        cmd.setOptionValueWithSource(key, value, 'env');
        fromEnv.set(key, name);
      }
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
