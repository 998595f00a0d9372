import type { FollowEvent, MigrateEvent } from '../../src/index.js';
import { formatBytes, formatCount } from './format.js';
import { migrateBars, migrateLines } from './progress.js';
import { reporterFor, type Reporter } from './reporter.js';

type Event = MigrateEvent | FollowEvent;
const isFollow = (e: Event): e is FollowEvent => e.type.startsWith('follow-');

/**
 * `migrate --follow`: the copy shows as migrate does; then, on a terminal, one live status line
 * (applied position, lag, changes/s per shard); in CI a status line every 10 s; NDJSON with --json.
 */
export function createFollowReporter(opts: { json?: boolean; quiet?: boolean }): Reporter<Event> {
  return reporterFor<Event>(opts, {
    bytesOf: (e) => (e.type === 'bytes' ? e.bytes : undefined),
    lines: () => {
      const copy = migrateLines();
      let following = false;
      let last = 0;
      return {
        heartbeat: () => (following ? undefined : copy.heartbeat?.()),
        line(e) {
          if (!isFollow(e)) return copy.line(e);
          following = true;
          if (e.type !== 'follow-progress') return followLine(e);
          if (Date.now() - last < 10_000) return undefined;
          last = Date.now();
          return followStatus(e);
        },
      };
    },
    bars: () => {
      const copy = migrateBars();
      let live = false; // the status line is on screen
      const endLive = () => live && process.stderr.write('\n');
      return {
        event(e) {
          if (!isFollow(e)) return copy.event(e);
          if (e.type === 'follow-start') copy.stop();
          if (e.type === 'follow-progress') {
            live = true;
            process.stderr.write(`\r\x1b[K${followStatus(e)}`);
            return;
          }
          endLive();
          live = false;
          process.stderr.write(`${followLine(e)}\n`);
        },
        stop() {
          copy.stop();
          endLive();
        },
      };
    },
  });
}

function followLine(e: Exclude<FollowEvent, { type: 'follow-progress' }>): string {
  switch (e.type) {
    case 'follow-start':
      return `following the source from ${e.from} (slot ${e.slot}); stop with Ctrl-C, finish with shardctl cutover`;
    case 'follow-warning':
      return `warning: ${e.message}`;
    case 'follow-stop':
      return `follower stopped (${e.reason}) at ${e.appliedLsn}${e.message ? `: ${e.message}` : ''}`;
  }
}

function followStatus(e: Extract<FollowEvent, { type: 'follow-progress' }>): string {
  const lag = `lag ${e.lagBytes === null ? '?' : formatBytes(e.lagBytes)}, ${e.lagSeconds === null ? '?' : `${e.lagSeconds.toFixed(1)} s`}`;
  const shards = e.shards.map((s) => `${s.shard} ${formatCount(s.changesPerSecond)}/s`).join(' ');
  return `applied up to ${e.appliedLsn}; ${lag}; ${formatCount(e.changesPerSecond)} changes/s (${shards})`;
}
