import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { UserError } from '../src/basics.js';
import type { VerifyEvent } from '../src/index.js';
import { verifyExit } from './exit-codes.js';
import { load, output, positiveInt, withGlobalOptions, type GlobalOptions, commaList } from './context.js';
import { formatCount, table } from './ui/format.js';
import { countBar } from './ui/count-bar.js';
import { reporterFor, type Reporter } from './ui/reporter.js';

interface VerifyFlags extends GlobalOptions {
  units?: string[];
  tables?: string[];
  junit?: string;
  concurrency?: number;
  placementOnly?: boolean;
}


/**
 * `shardctl verify`: exit 0 only when everything matches, 1 on any difference, 2 bad usage or
 * config, 3 a server could not be read. The report (or --json) goes to stdout, progress to stderr.
 */
export function register(program: Command): void {
  withGlobalOptions(
    program
      .command('verify')
      .description('prove the shards hold exactly the right data: per-unit counts and checksums, misplaced and duplicated rows, reference tables, schema drift')
      .option('--units <ids>', 'only these units (comma-separated; repeatable)', commaList)
      .option('--tables <names>', 'only these tables (comma-separated; repeatable)', commaList)
      .option('--junit <file>', 'also write a JUnit XML report (one testcase per table and shard)')
      .option('--concurrency <n>', 'checksum queries in flight at once (default: shards + 1)', positiveInt('--concurrency'))
      .option('--placement-only', 'after cutover, without the source: misplaced and duplicated rows, reference tables and drift across the shards'),
  ).action(async (opts: VerifyFlags) => {
    const config = await load(opts);
    const { formatReport, junitXml, verify } = await import('../src/index.js');
    const out = output(opts);
    const reporter = reporterFor<VerifyEvent>(opts, { lines: () => ({ line: progress }), bars: () => scanBars() });
    const result = await verify(config, {
      units: opts.units,
      tables: opts.tables,
      concurrency: opts.concurrency,
      placementOnly: opts.placementOnly,
      onEvent: (e) => reporter.event(e),
    }).finally(() => reporter.stop());
    if (opts.junit) {
      try {
        writeFileSync(opts.junit, junitXml(result));
      } catch (e) {
        throw new UserError('blocked', `--junit ${opts.junit}: cannot write the report (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
      }
    }
    process.exitCode = verifyExit(result);
    out.result(formatReport(result, { table }), { ...result, exitCode: process.exitCode });
  });
}

function progress(e: VerifyEvent): string | undefined {
  if (e.type === 'start') return `verifying ${e.tables} tables on ${e.servers.join(', ')} (units' shards from ${e.placementsFrom})`;
  if (e.type === 'table') return `${e.server}: ${e.table} ${formatCount(e.rows)} rows, ${formatCount(e.units)} units (${e.seconds.toFixed(2)}s)`;
  if (e.type === 'server' && e.error) return `${e.server}: could not be read: ${e.error}`;
  return undefined;
}

/** On a terminal: one bar with ETA over every table scan of every server (source included), failures above it. */
export function scanBars(stream?: NodeJS.WriteStream): Reporter<VerifyEvent> {
  const bar = countBar('table scans', { stream, tty: true })!;
  return {
    event(e) {
      if (e.type === 'start') {
        bar.log(progress(e)!);
        bar.start(e.tables * e.servers.length);
      } else if (e.type === 'table') bar.tick();
      else if (e.type === 'server' && e.error) bar.log(progress(e)!);
    },
    stop: () => bar.stop(),
  };
}
