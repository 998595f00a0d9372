import chalk from 'chalk';
import { CommanderError, type Command } from 'commander';
import { isUserError, UserError, usageError } from '../src/basics.js';
import type { HealthReport, HealthThresholds, ServerReport, HealthStatus as Status, ThresholdOverrides } from '../src/index.js';
import type { HealthLevels } from '../src/index.js';
import { healthExit } from './exit-codes.js';
import { reportError } from './ui/errors.js';
import { bigintSafe } from './ui/output.js';
import { duration, load, ratio, size, withGlobalOptions, type GlobalOptions } from './context.js';
import { given } from './env.js';

/**
 * `shardctl health`: cron-ready checks with monitoring-convention exit codes — 0 OK, 1 WARNING,
 * 2 CRITICAL, 3 UNKNOWN. Unlike every other command, anything that stops the check itself (bad
 * usage, bad config, an internal error) is 3 UNKNOWN, so a monitoring system never reads a broken
 * config as "critical" or "warning".
 *
 * Output: the human report on stdout (one line per problem, one per healthy server unless --quiet,
 * a summary; nothing at all under --quiet when all is well); --json the report as JSON; --prometheus
 * the text exposition format (problems then go to stderr); --textfile PATH also writes the
 * exposition atomically for node_exporter's textfile collector.
 */
interface HealthFlags extends GlobalOptions {
  prometheus?: boolean;
  textfile?: string;
  timeout?: number;
  catalog?: boolean;
  [level: string]: unknown;
}

type Parse = (v: string) => number;
const seconds = (parse: Parse): Parse => (v) => parse(v) / 1000;

/**
 * Threshold flags, declared once: `--<name>-warning` / `--<name>-critical` over config.health.<key>.
 * Durations take a unit (`250ms`, `10s`, `5m`; a bare number keeps the flag's old unit), sizes one
 * too (`64MB`), ratios are from 0 to 1.
 */
const LEVEL_FLAGS: readonly { name: string; key: keyof HealthThresholds; arg: string; parse: (flag: string) => Parse; what: string }[] = [
  { name: 'latency', key: 'latencyMs', arg: 'duration', parse: (f) => duration(f, 'ms', { zero: true }), what: 'connect + query time (e.g. 250ms)' },
  { name: 'lag', key: 'lagSeconds', arg: 'duration', parse: (f) => seconds(duration(f, 's', { zero: true })), what: 'replication lag in time (e.g. 10s)' },
  { name: 'lag-bytes', key: 'lagBytes', arg: 'size', parse: size, what: 'replication lag in bytes (e.g. 64MB)' },
  { name: 'slot', key: 'slotRetainedBytes', arg: 'size', parse: size, what: 'WAL retained by a replication slot (e.g. 1GB)' },
  { name: 'connections', key: 'connections', arg: 'ratio', parse: ratio, what: 'connections / max_connections (0 to 1)' },
  { name: 'capacity', key: 'capacity', arg: 'ratio', parse: ratio, what: 'database size / shard capacity (0 to 1)' },
  { name: 'prepared', key: 'preparedSeconds', arg: 'duration', parse: (f) => seconds(duration(f, 's', { zero: true })), what: 'age of the oldest prepared (two-phase) transaction (e.g. 60s)' },
];

const camel = (s: string) => s.replace(/-(\w)/g, (_, c: string) => c.toUpperCase());

export function register(program: Command): void {
  const cmd = program
    .command('health')
    .description('check every primary and replica, replication and the catalog (exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)')
    .option('--prometheus', 'print Prometheus text exposition format instead of the report (problems go to stderr)')
    .option('--textfile <path>', "also write the metrics atomically to PATH (node_exporter's textfile collector)")
    .option('--timeout <duration>', 'bound on each probe, connect and query, e.g. 2s or 500ms (default config health.timeoutMs, 2000 ms)', duration('--timeout', 'ms'))
    .option('--no-catalog', 'skip the catalog consistency check');
  for (const f of LEVEL_FLAGS) {
    cmd.option(`--${f.name}-warning <${f.arg}>`, `warn above this ${f.what}`, f.parse(`--${f.name}-warning`));
    cmd.option(`--${f.name}-critical <${f.arg}>`, `critical above this ${f.what}`, f.parse(`--${f.name}-critical`));
  }
  withGlobalOptions(cmd)
    // A usage error is UNKNOWN (3) for health, not the usual 2, which monitoring would read as CRITICAL.
    .showHelpAfterError(false)
    .configureOutput({ outputError: () => undefined })
    .exitOverride((err: CommanderError) => {
      if (err.exitCode === 0) throw err; // --help
      throw new UserError('blocked', err.message.replace(/^error: /, ''), { hint: 'run shardctl health --help for usage', cause: err });
    })
    .action(async (opts: HealthFlags) => {
      try {
        process.exitCode = await run(opts);
      } catch (e) {
        throw isUserError(e) && e.kind !== 'blocked'
          ? new UserError('blocked', e.message, { details: [...e.details], hint: e.hint, cause: e })
          : e;
      }
    });
}

async function run(opts: HealthFlags): Promise<number> {
  if (opts.json && opts.prometheus) throw usageError(`${given('json', '--json')} and --prometheus both want stdout; choose one (use --textfile for the metrics)`);
  const config = await load(opts);
  const { resolveThresholds, health, prometheusText, writeTextfile, worstHealthStatus: worst } = await import('../src/index.js');
  const thresholds: { -readonly [K in keyof ThresholdOverrides]: Partial<HealthLevels> } = {};
  for (const f of LEVEL_FLAGS) {
    const warning = opts[camel(`${f.name}-warning`)] as number | undefined;
    const critical = opts[camel(`${f.name}-critical`)] as number | undefined;
    if (warning !== undefined || critical !== undefined) thresholds[f.key] = { warning, critical };
  }
  // a warning above its critical level would never warn first (flags checked against the config's levels)
  const levels = resolveThresholds(config.health, thresholds);
  for (const f of LEVEL_FLAGS) {
    const l = levels[f.key];
    if (l.warning > l.critical) throw usageError(`--${f.name}-warning (${l.warning}) is above --${f.name}-critical (${l.critical}); a warning must come first`, `the other level may come from ${config.file} (health.${f.key})`);
  }
  const report = await health(config, { timeoutMs: opts.timeout, thresholds, catalog: opts.catalog });
  const metrics = opts.prometheus || opts.textfile ? await prometheusText(report) : '';
  if (opts.json) {
    const { status, ...rest } = report; // the exit code second, where the report carried it before
    process.stdout.write(`${JSON.stringify({ status, exitCode: healthExit(status), ...rest }, bigintSafe, 2)}\n`);
  } else if (opts.prometheus) {
    process.stdout.write(metrics);
    if (report.status !== 'ok') process.stderr.write(render(report, true));
  } else {
    process.stdout.write(render(report, Boolean(opts.quiet)));
  }
  if (opts.textfile) {
    try {
      await writeTextfile(opts.textfile, metrics);
    } catch (e) {
      // The report above still stands; a textfile that could not be written is one more UNKNOWN.
      reportError(e, false);
      return healthExit(worst([report.status, 'unknown']));
    }
  }
  return healthExit(report.status);
}

const PAINT: Record<Status, (s: string) => string> = { ok: chalk.green, warning: chalk.yellow, critical: chalk.red, unknown: chalk.magenta };
const word = (s: Status) => PAINT[s](s.toUpperCase());

/**
 * One line per problem (`CRITICAL s1 primary postgres://app:***@h:5433/app: down (connection
 * refused)`), then unless quiet one line per healthy server, then a summary. Quiet and healthy: ''.
 */
export function render(r: HealthReport, quiet: boolean): string {
  if (quiet && r.status === 'ok') return '';
  const lines = r.problems.map((p) => `${word(p.status)} ${p.role === 'catalog' ? 'catalog' : `${p.shard} ${p.role}`} ${p.url}: ${p.message}`);
  if (!quiet) {
    for (const s of r.servers) if (s.status === 'ok') lines.push(`${word('ok')} ${s.shard} ${s.role} ${s.url}: ${brief(s)}`);
    if (r.catalog?.status === 'ok') lines.push(`${word('ok')} catalog ${r.catalog.url}: ${r.catalog.checks[0]!.message}`);
    for (const c of r.cellStatus) lines.push(`cells ${c.shard}: ${cellList(c.readOnly, 'read-only')}${c.readOnly.length && c.full.length ? ', ' : ''}${cellList(c.full, 'full')}`);
  }
  const count = (s: Status) => r.problems.filter((p) => p.status === s).length;
  const down = r.servers.filter((s) => !s.up).length;
  const tally = (['critical', 'warning', 'unknown'] as const).filter((s) => count(s) > 0).map((s) => `${count(s)} ${s}`);
  lines.push(
    `${word(r.status)}: ${r.shards} shard${r.shards === 1 ? '' : 's'}, ${r.servers.length} server${r.servers.length === 1 ? '' : 's'}` +
      `${down ? ` (${down} down)` : ''}${tally.length ? `; ${tally.join(', ')}` : ''}; checked in ${Math.round(r.durationMs)} ms`,
  );
  return `${lines.join('\n')}\n`;
}

const cellList = (cells: readonly string[], what: string) =>
  cells.length ? `${cells.length} ${what} (${cells.slice(0, 3).join(', ')}${cells.length > 3 ? ', …' : ''})` : '';

/** The facts of a healthy server in a few words. */
function brief(s: ServerReport): string {
  const msg = (c: string) => s.checks.find((x) => x.check === c)?.message;
  return [
    `${Math.round((s.connectMs ?? 0) + (s.queryMs ?? 0))} ms`,
    s.lag ? msg('lag') : undefined,
    msg('connections'),
    msg('capacity') ?? (s.facts ? `database ${(s.facts.databaseBytes / 1024 ** 2).toFixed(1)} MB` : undefined),
  ].filter(Boolean).join(', ');
}
