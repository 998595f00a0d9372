import cliProgress from 'cli-progress';
import type { MigrateEvent } from '../../src/index.js';
import { formatBytes, formatCount, formatSeconds } from './format.js';
import { interactive } from './output.js';

export interface Reporter {
  event(e: MigrateEvent): void;
  stop(): void;
}

/**
 * The reporter for the situation: NDJSON events with --json, a multi-bar on a TTY, else one line
 * per finished table and shard plus a heartbeat (CI logs, cron). --quiet silences the last two.
 */
export function createReporter(opts: { json?: boolean; quiet?: boolean }): Reporter {
  if (opts.json) return ndjson();
  if (opts.quiet) return { event: () => undefined, stop: () => undefined };
  return interactive(process.stderr) ? bars() : lines();
}

function ndjson(): Reporter {
  // bytes events are many per second; NDJSON carries them folded into a periodic progress line
  let bytes = 0;
  const timer = setInterval(() => bytes && process.stderr.write(`${JSON.stringify({ type: 'progress', bytes })}\n`), 1000);
  timer.unref();
  return {
    event(e) {
      if (e.type === 'bytes') bytes += e.bytes;
      else process.stderr.write(`${JSON.stringify(e)}\n`);
    },
    stop: () => clearInterval(timer),
  };
}

function lines(): Reporter {
  const started = Date.now();
  let rows = 0;
  let total = 0;
  let bytes = 0;
  const say = (s: string) => process.stderr.write(`${s}\n`);
  const timer = setInterval(() => {
    const secs = (Date.now() - started) / 1000;
    say(`… ${formatCount(rows)}/${formatCount(total)} rows, ${formatBytes(bytes)} in ${formatSeconds(secs)} (${formatBytes(bytes / secs)}/s)`);
  }, 10_000);
  timer.unref();
  return {
    event(e) {
      switch (e.type) {
        case 'start':
          total = e.rows;
          say(`migrating ${e.units - e.skipped} units (${formatCount(e.rows)} rows) to ${e.shards.length} shards; ${e.skipped} already placed`);
          break;
        case 'reference':
          say(`${e.shard}: reference ${e.table} ${e.changed ? `synced (${formatCount(e.rows)} rows)` : 'already identical'}`);
          break;
        case 'bytes':
          bytes += e.bytes;
          break;
        case 'table':
          say(`${e.shard}: ${e.table} ${formatCount(e.rows)} rows, ${formatBytes(e.bytes)} (${e.units} units)`);
          break;
        case 'batch':
          rows += e.rows;
          say(`${e.shard}: batch of ${e.units.length} units committed${e.failed.length ? `, ${e.failed.length} FAILED` : ''}`);
          break;
        case 'batch-error':
          say(`${e.shard}: batch of ${e.units.length} units ${e.retrying ? 'retrying after' : 'FAILED:'} ${e.error}`);
          break;
        case 'sequences':
          if (e.sequences) say(`${e.shard}: ${e.sequences} sequences aligned`);
          break;
        case 'done':
          break;
      }
    },
    stop: () => clearInterval(timer),
  };
}

function bars(): Reporter {
  const multi = new cliProgress.MultiBar(
    {
      format: ' {name} |{bar}| {percentage}% {value}/{total} rows {rate} ETA {eta_formatted}',
      barCompleteChar: '█',
      barIncompleteChar: '░',
      hideCursor: true,
      clearOnComplete: false,
      stream: process.stderr,
      fps: 8,
    },
    cliProgress.Presets.shades_grey,
  );
  const started = Date.now();
  let overall: cliProgress.SingleBar | undefined;
  const perShard = new Map<string, cliProgress.SingleBar>();
  let bytes = 0;
  const done = { all: 0, shards: new Map<string, number>() }; // rows copied, to close the bars exactly
  const rate = () => `${formatBytes(bytes / Math.max(0.001, (Date.now() - started) / 1000))}/s`;
  return {
    event(e) {
      switch (e.type) {
        case 'start':
          overall = multi.create(Math.max(1, e.rows), 0, { name: 'all'.padEnd(6), rate: '' });
          for (const s of e.shards) perShard.set(s.shard, multi.create(Math.max(1, s.rows), 0, { name: s.shard.padEnd(6), rate: '' }));
          break;
        case 'bytes':
          bytes += e.bytes;
          break;
        case 'table':
          done.all += e.rows;
          done.shards.set(e.shard, (done.shards.get(e.shard) ?? 0) + e.rows);
          perShard.get(e.shard)?.increment(e.rows, { rate: rate() });
          overall?.increment(e.rows, { rate: `${rate()} ${formatBytes(bytes)}` });
          break;
        case 'batch-error':
          multi.log(`${e.shard}: batch of ${e.units.length} units ${e.retrying ? 'retrying after' : 'FAILED:'} ${e.error}\n`);
          break;
        case 'done':
          // totals were estimates (planner statistics): a finished run shows full bars
          overall?.setTotal(Math.max(1, done.all));
          for (const [shard, b] of perShard) b.setTotal(Math.max(1, done.shards.get(shard) ?? 0));
          break;
        default:
          break;
      }
    },
    stop: () => multi.stop(),
  };
}
