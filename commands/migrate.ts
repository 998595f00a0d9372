import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { usageError } from '../src/basics.js';
import type { Config, FollowResult, MigrateResult } from '../src/index.js';

type Engine = typeof import('../src/index.js');
import { duration, load, output, positiveInt, ratio, size, withGlobalOptions, type GlobalOptions, commaList } from './context.js';
import { migrateExit } from './exit-codes.js';
import { interruptSignal } from './signals.js';
import { crossShardLine, formatBytes, formatCount, formatSeconds, table } from './ui/format.js';
import { createFollowReporter } from './ui/follow-progress.js';
import { createReporter } from './ui/progress.js';
import { throttleLines } from './ui/throttle-lines.js';

interface MigrateFlags extends GlobalOptions {
  plan?: string;
  concurrency?: number;
  units?: string[];
  tables?: string[];
  dryRun?: boolean;
  verify?: boolean;
  resync?: boolean;
  batchRows?: number;
  fireTriggers?: boolean;
  indexesAfter?: boolean;
  follow?: boolean;
  abandon?: boolean;
  throttleLag?: number;
  throttleLagBytes?: number;
  throttleLoad?: number;
}


export function register(program: Command): void {
  withGlobalOptions(
    program
      .command('migrate')
      .description('copy every unit from the source to its shard (streaming COPY, resumable, verified)')
      .option('--plan <file>', 'migrate exactly the units of a reviewed plan (shardctl plan --out)')
      .option('--concurrency <n>', 'batches in flight at once (default 2)', positiveInt('--concurrency'))
      .option('--units <ids>', 'only these units (comma-separated; repeatable)', commaList)
      .option('--tables <names>', 'only these tables (comma-separated; repeatable)', commaList)
      .option('--dry-run', 'show what would be copied and change nothing')
      .option('--no-verify', 'skip the per-unit count and checksum comparison')
      .option('--resync', 'copy units again even if already placed (e.g. before cutover)')
      .option('--batch-rows <n>', 'rows of the keyed tables per batch: one source snapshot and one target transaction (default 1000000)', positiveInt('--batch-rows'))
      .option('--fire-triggers', "keep the shards' per-row triggers during the copy (slower; by default foreign keys are checked once per batch)")
      .option('--indexes-after', 'initial load: drop the secondary indexes of empty shard tables and build them after the copy (the default; recorded in the catalog, a rerun builds any left)')
      .option('--no-indexes-after', 'keep the secondary indexes of empty shard tables during the copy')
      .option('--follow', 'online: copy from a logical replication slot, then apply the source\'s changes until shardctl cutover')
      .option('--throttle-lag <duration>', "pause the copy and the apply while a shard's replica replays further behind, e.g. 30s (default: health's lag warning)", duration('--throttle-lag', 's'))
      .option('--throttle-lag-bytes <size>', "pause the copy and the apply while a shard's replica is more WAL behind, e.g. 64MB (default: health's lag warning)", size('--throttle-lag-bytes'))
      .option('--throttle-load <ratio>', "pause the copy and the apply while more than this share of the monolith's max_connections run queries at once (shardctl's own not counted), e.g. 0.5 (default: health's connections warning)", ratio('--throttle-load'))
      .option('--abandon', 'end an online migration that will not be cut over: drop its slot and publication'),
  ).action(async (opts: MigrateFlags) => {
    const config = await load(opts);
    const { migrate, createThrottle } = await import('../src/index.js');
    if (opts.follow || opts.abandon) return online(config, opts);
    const out = output(opts);
    const reporter = createReporter(opts);
    const interrupt = interruptSignal();
    let result: MigrateResult;
    try {
      result = await migrate(config, {
        concurrency: opts.concurrency,
        units: opts.units,
        tables: opts.tables,
        plan: opts.plan ? readPlan(opts.plan) : undefined,
        dryRun: opts.dryRun,
        verify: opts.verify,
        resync: opts.resync,
        batchRows: opts.batchRows,
        fireTriggers: opts.fireTriggers,
        indexesAfter: opts.indexesAfter,
        throttle: throttleOf(createThrottle, config, opts, interrupt.signal),
        signal: interrupt.signal,
        onEvent: (e) => reporter.event(e),
      });
    } finally {
      reporter.stop();
      interrupt.dispose();
    }
    process.exitCode = migrateExit(result);
    out.result(render(result, config.file), { ...result, exitCode: process.exitCode });
  });
}

async function online(config: Config, opts: MigrateFlags): Promise<void> {
  const { abandon, follow, createThrottle } = await import('../src/index.js');
  const out = output(opts);
  if (opts.follow && opts.abandon) throw usageError('--follow and --abandon do not go together');
  const other = (['plan', 'units', 'tables', 'dryRun', 'resync'] as const).find((k) => opts[k] !== undefined);
  if (other) throw usageError(`--${other.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} does not apply to an online migration (it copies every unit)`);
  if (opts.abandon) {
    const r = await abandon(config);
    const gone = [r.slot && 'slot', r.publication && 'publication'].filter(Boolean).join(' and ');
    out.result(`online migration abandoned: ${gone ? `${gone} dropped` : 'no slot or publication was left'}${r.fenceLifted ? '; the monolith\'s cutover fence is lifted' : ''}`, r);
    return;
  }
  const reporter = createFollowReporter(opts);
  const interrupt = interruptSignal();
  let r: FollowResult;
  try {
    r = await follow(config, {
      concurrency: opts.concurrency,
      batchRows: opts.batchRows,
      throttle: throttleOf(createThrottle, config, opts, interrupt.signal),
      signal: interrupt.signal,
      onEvent: (e) => reporter.event(e),
    });
  } finally {
    reporter.stop();
    interrupt.dispose();
  }
  const copy = r.copy ? `copied ${r.copy.units.copied} units, ${formatCount(r.copy.rows)} rows in ${formatSeconds(r.copy.seconds)}; ` : '';
  out.result(
    r.stopped === 'already-cut-over'
      ? 'the online migration is already cut over: nothing to follow'
      : `${copy}followed until cutover: ${formatCount(r.applied)} changes applied, shards at ${r.appliedLsn}`,
    r,
  );
}

/** The copy's and the apply's throttle: replica lag and monolith load bounds from the flags (else health's warnings), the catalog's on-demand flag. */
function throttleOf(createThrottle: Engine['createThrottle'], config: Config, opts: MigrateFlags, signal: AbortSignal) {
  return createThrottle(config, {
    maxLagSeconds: opts.throttleLag === undefined ? undefined : opts.throttleLag / 1000,
    maxLagBytes: opts.throttleLagBytes,
    maxSourceLoad: opts.throttleLoad,
    signal,
    onEvent: throttleLines(opts),
  });
}

function render(r: MigrateResult, file: string): string {
  const lines: string[] = [];
  const verb = r.dryRun ? 'would copy' : 'copied';
  const pending = r.shards.reduce((n, s) => n + s.units, 0);
  lines.push(
    r.dryRun
      ? `dry run: ${pending} of ${r.units.total} units to copy, ${r.units.skipped} already placed`
      : `${verb} ${r.units.copied} units, ${formatCount(r.rows)} rows, ${formatBytes(r.bytes)} in ${formatSeconds(r.seconds)}` +
          (r.seconds > 0 ? ` (${formatBytes(r.bytes / r.seconds)}/s)` : '') +
          `; ${r.units.skipped} already placed`,
  );
  lines.push(
    table(
      ['shard', 'units', 'rows', 'bytes', 'failed'],
      r.shards.map((s) => [s.shard, s.units, formatCount(s.rows), formatBytes(s.bytes), s.failed]),
    ),
  );
  for (const c of r.crossShard ?? []) lines.push(crossShardLine(c));
  for (const f of r.failures) lines.push(`MISMATCH unit ${f.unit} on ${f.shard}: ${f.reason} (rolled back)`);
  for (const e of r.errors) lines.push(`FAILED ${e.units.length} unit(s) for ${e.shard}: ${e.error}`);
  if (r.elsewhere.length) {
    lines.push(`${r.elsewhere.length} unit(s) are placed on another shard than they route to; run: shardctl rebalance --config ${file}`);
  }
  if (!r.ok) lines.push(`run the same command again to retry the units that were not copied`);
  return lines.join('\n');
}

function readPlan(file: string): { units: { unit: string; shard: string }[] } {
  try {
    const doc = JSON.parse(readFileSync(file, 'utf8'));
    if (!Array.isArray(doc.assignment)) throw new Error('no "assignment" list');
    return { units: doc.assignment.map((a: { unit: string; shard: string }) => ({ unit: String(a.unit), shard: String(a.shard) })) };
  } catch (e) {
    throw usageError(`${file}: not a plan file written by shardctl plan --out (${(e as Error).message})`);
  }
}
