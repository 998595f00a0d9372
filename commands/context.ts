import { Command, InvalidArgumentError, Option } from 'commander';
import { parseDuration, parseRatio, parseSize, type Duration } from '../src/basics.js';
import type { Config, MovePointHook } from '../src/index.js';
import { createOutput, type Output } from './ui/output.js';

export interface GlobalOptions {
  config?: string;
  json?: boolean;
  quiet?: boolean;
}

/** Options every command takes; declared once and added to each subcommand. */
export function withGlobalOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('-c, --config <file>', 'config file (default ./shardctl.yaml)'))
    .option('--json', 'print the result as JSON on stdout (logs and progress stay on stderr)')
    .option('-q, --quiet', 'print only the result and problems');
}

/** Precedence: --config > SHARDCTL_CONFIG > ./shardctl.yaml. */
export function configPath(opts: GlobalOptions): string {
  return opts.config ?? process.env.SHARDCTL_CONFIG ?? 'shardctl.yaml';
}

/** Loads the config; the engine is imported here, when a command runs, not when the CLI starts. */
export async function load(opts: GlobalOptions): Promise<Config> {
  const { loadConfig } = await import('../src/route-door.js');
  return loadConfig(configPath(opts));
}

export function output(opts: GlobalOptions): Output {
  return createOutput(opts);
}

/** Integer option parser with a clear message (commander turns the thrown error into exit 2). */
export function positiveInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    // InvalidArgumentError: commander prints it as a usage error (exit 2), not as a crash
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a whole number of at least 1, got "${v}"`);
    return n;
  };
}

/** A repeatable comma-separated option: `--units 1,2 --units 3` → ['1', '2', '3']. */
export const commaList = (v: string, prev: string[] = []) => [...prev, ...v.split(',').map((s) => s.trim()).filter(Boolean)];

/**
 * A duration option (`500ms`, `60s`, `2m`) as milliseconds. A bare number is still read in the
 * flag's historical unit, with a note asking for the unit (it will be required later).
 */
export function duration(flag: string, bareUnit: 'ms' | 's', opts: { zero?: boolean } = {}) {
  return (v: string): number => {
    let d: Duration;
    try {
      d = parseDuration(v, bareUnit);
    } catch (e) {
      throw new InvalidArgumentError(`${flag} ${(e as Error).message}`);
    }
    if (d.ms <= 0 && !(opts.zero && d.ms === 0)) throw new InvalidArgumentError(`${flag} must be longer than 0, got "${v}"`);
    if (d.bare) process.stderr.write(`warning: ${flag} ${v.trim()} is read as ${v.trim()}${bareUnit}; write the unit (${v.trim()}${bareUnit}): a bare number is deprecated\n`);
    return d.ms;
  };
}

/** A size option (`64MB`, `2GB`, or bare bytes) as bytes. */
export function size(flag: string) {
  return (v: string): number => {
    const n = parseSize(v);
    if (n === undefined) throw new InvalidArgumentError(`${flag} must be a size such as 64MB or 2GB (or bytes), got "${v}"`);
    return n;
  };
}

/** A ratio option from 0 to 1. */
export function ratio(flag: string) {
  return (v: string): number => {
    const n = parseRatio(v);
    if (n === undefined) throw new InvalidArgumentError(`${flag} must be a ratio from 0 to 1 such as 0.8, got "${v}"`);
    return n;
  };
}

/**
 * What an entry point may hand the program besides its arguments (main's second parameter). The
 * launcher hands nothing; a test entry (test/helpers/faulty-cli.ts) kills the process at a move's
 * point, so the engine itself never reads a fault from the environment.
 */
export interface ProgramHooks {
  /** passed to every rebalance the commands run (rebalance, pin, unpin, mapping set, add-shard, remove-shard) */
  onMovePoint?: MovePointHook;
}

let installed: ProgramHooks = {};

/** Set by `main` for the run it starts. */
export function installHooks(hooks: ProgramHooks): void {
  installed = hooks;
}

export const programHooks = (): ProgramHooks => installed;
