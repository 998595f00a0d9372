import cliProgress from 'cli-progress';
import type { MigrateEvent } from '../../src/index.js';
import { formatBytes, formatCount, formatSeconds } from './format.js';
import { reporterFor, type LineView, type Reporter } from './reporter.js';

/** migrate's progress: bytes folded under --json, a multi-bar on a TTY, else lines and a heartbeat. */
export function createReporter(opts: { json?: boolean; quiet?: boolean }): Reporter<MigrateEvent> {
  return reporterFor(opts, { lines: migrateLines, bars: migrateBars, bytesOf: (e) => (e.type === 'bytes' ? e.bytes : undefined) });
}

export function migrateLines(): LineView<MigrateEvent> {
  const started = Date.now();
  let rows = 0;
  let total = 0;
  let bytes = 0;
  return {
    heartbeat() {
      const secs = (Date.now() - started) / 1000;
      return `… ${formatCount(rows)}/${formatCount(total)} rows, ${formatBytes(bytes)} in ${formatSeconds(secs)} (${formatBytes(bytes / secs)}/s)`;
    },
    line(e) {
      switch (e.type) {
        case 'cells':
          return `${e.table}: the cells of ${formatCount(e.rows)} rows computed once for this run (${formatSeconds(e.seconds)})`;
        case 'start':
          total = e.rows;
          return `migrating ${e.units - e.skipped} units (${formatCount(e.rows)} rows) to ${e.shards.length} shards; ${e.skipped} already placed`;
        case 'reference':
          return `${e.shard}: reference ${e.table} ${e.changed ? `synced (${formatCount(e.rows)} rows)` : 'already identical'}`;
        case 'bytes':
          bytes += e.bytes;
          return undefined;
        case 'table':
          return `${e.shard}: ${e.table} ${formatCount(e.rows)} rows, ${formatBytes(e.bytes)} (${e.units} units)`;
        case 'batch':
          rows += e.rows;
          return `${e.shard}: batch of ${e.units.length} units committed${e.failed.length ? `, ${e.failed.length} FAILED` : ''}`;
        case 'batch-error':
          return `${e.shard}: batch of ${e.units.length} units ${e.retrying ? 'retrying after' : 'FAILED:'} ${e.error}`;
        case 'sequences':
          return e.sequences ? `${e.shard}: ${e.sequences} sequences aligned` : undefined;
        case 'indexes-deferred':
          return `${e.shard}: ${e.indexes} secondary indexes of empty tables dropped; built after the copy (--no-indexes-after keeps them)`;
        case 'indexes':
          return `${e.shard}: ${e.indexes} deferred indexes built (${formatSeconds(e.seconds)})`;
        case 'step':
        case 'done':
          return undefined;
      }
    },
  };
}

export function migrateBars(): Reporter<MigrateEvent> {
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
