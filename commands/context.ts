import { Command, InvalidArgumentError, Option } from 'commander';
import { loadConfig } from '../src/index.js';
import type { Config } from '../src/index.js';
import { createOutput, type Output } from './ui/output.js';

export interface GlobalOptions {
  config?: string;
  json?: boolean;
  quiet?: boolean;
}

/** Options every command takes; declared once and added to each subcommand. */
export function withGlobalOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('-c, --config <file>', 'config file (else $SHARDCTL_CONFIG, else ./shardctl.yaml)'))
    .option('--json', 'print the result as JSON on stdout (logs and progress stay on stderr)')
    .option('-q, --quiet', 'print only the result and problems');
}

/** Precedence: --config > SHARDCTL_CONFIG > ./shardctl.yaml. */
export function configPath(opts: GlobalOptions): string {
  return opts.config ?? process.env.SHARDCTL_CONFIG ?? 'shardctl.yaml';
}

export function load(opts: GlobalOptions): Config {
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

/** A flag value parsed by `fn` (parseDurationMs, byteSize): its error becomes commander's usage error (exit 2). */
export function parsedFlag<T>(name: string, fn: (v: string) => T, what = 'a size such as 64MB') {
  return (v: string): T => {
    try {
      return fn(v);
    } catch (e) {
      const m = (e as Error).message;
      throw new InvalidArgumentError(`${name} ${m.startsWith('must') ? m : `must be ${what}, got "${v}"`}`);
    }
  };
}

/** A repeatable comma-separated option: `--units 1,2 --units 3` → ['1', '2', '3']. */
export const commaList = (v: string, prev: string[] = []) => [...prev, ...v.split(',').map((s) => s.trim()).filter(Boolean)];
