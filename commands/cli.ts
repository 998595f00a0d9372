import { Command, CommanderError } from 'commander';
import { ExitCode } from '../src/basics.js';
import { register as health } from './health.js';
import { register as failover } from './failover.js';
import { register as removeShard } from './remove-shard.js';
import { register as addShard } from './add-shard.js';
import { register as cutover } from './cutover.js';
import { register as rollback } from './rollback.js';
import { register as demo } from './demo.js';
import { register as migrate } from './migrate.js';
import { register as pin } from './pin.js';
import { register as rebalance } from './rebalance.js';
import { register as plan } from './plan.js';
import { register as resolveCmd } from './resolve.js';
import { register as route } from './route.js';
import { register as verify } from './verify.js';
import { readFileSync } from 'node:fs';
import { register as throttle } from './throttle.js';
import { applyEnvTwins, describeTwins } from './env.js';
import { addHelpTexts } from './help.js';
import { installHooks, type ProgramHooks } from './context.js';
import { reportError } from './ui/errors.js';
import { setupColour, tolerateClosedPipes } from './ui/output.js';

/** Builds the program; each command file registers itself. */
export function buildProgram(): Command {
  const program = new Command('shardctl')
    .description('split a PostgreSQL monolith into shards and operate them')
    .version(ownVersion())
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .hook('preAction', (_program, action) => applyEnvTwins(action));
  for (const register of [route, plan, migrate, cutover, rollback, verify, rebalance, addShard, removeShard, pin, failover, resolveCmd, health, throttle]) register(program);
  demo(program, main); // the demo runs the real commands, in this process
  describeTwins(program);
  addHelpTexts(program);
  return program;
}

/** shardctl's own version, from its package.json (not npm_package_version, which is whatever package runs a script). */
function ownVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Runs the CLI; returns the exit code instead of exiting, so output is never truncated. `hooks`: for tests (context.ts ProgramHooks). */
export async function main(argv: string[], hooks: ProgramHooks = {}): Promise<number> {
  installHooks(hooks);
  setupColour();
  tolerateClosedPipes();
  const program = buildProgram();
  const json = argv.includes('--json') || /^(1|true|yes|on)$/i.test(process.env.SHARDCTL_JSON ?? '');
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : ExitCode.ok;
  } catch (e) {
    if (e instanceof CommanderError) {
      // help and version are "errors" to commander; they already printed (a usage error to stderr)
      if (e.exitCode === 0) return ExitCode.ok;
      if (json) process.stdout.write(`${JSON.stringify({ ok: false, error: { kind: 'usage', message: e.message.replace(/^error: /, '') } })}\n`);
      return ExitCode.usage;
    }
    return reportError(e, json);
  }
}
