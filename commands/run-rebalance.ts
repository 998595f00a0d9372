import type { Config, RebalanceEvent, RebalanceResult } from '../src/index.js';

type Engine = typeof import('../src/index.js');
import { load, output, programHooks, type GlobalOptions } from './context.js';
import { rebalanceExit } from './exit-codes.js';
import { interruptSignal } from './signals.js';
import { crossShardLine, formatBytes, formatCount, formatSeconds, table } from './ui/format.js';
import { countBar } from './ui/count-bar.js';
import { foldedLines } from './ui/folded-lines.js';
import { reporterFor, type Reporter } from './ui/reporter.js';

export interface RebalanceFlags extends GlobalOptions {
  apply?: boolean;
  concurrency?: number;
  offline?: boolean;
  /** ms (the --timeout duration) */
  timeout?: number;
}

/** `--timeout` of every command that moves units (rebalance, pin, unpin, mapping set, add-shard, remove-shard). */
export const MOVE_TIMEOUT_FLAG = '--timeout <duration>';
export const MOVE_TIMEOUT_HELP =
  "online moves: how long a unit's old shard may stay fenced for the final catch-up and the proof of the rows changed since the last one, e.g. 5s (default 5s); past it the fence is lifted, the move undone (exit 3)";

export interface RunRebalanceExtras {
  /** with --apply: what to do once the preflight passed, before any move (a topology edit writes its file) */
  onPreflightPassed?: () => void | Promise<void>;
  /** the command that applies a preview (default `shardctl rebalance --apply --config FILE`) */
  applyWith?: string;
}

/** Shared by `rebalance` and `add-shard` / `pin` / `unpin` / `mapping set`, previews and --apply. */
export async function runRebalance(config: Config, opts: RebalanceFlags, extras: RunRebalanceExtras = {}): Promise<RebalanceResult> {
  const out = output(opts);
  const interrupt = interruptSignal();
  const reporter = rebalanceReporter(opts);
  const { rebalance } = await import('../src/index.js');
  try {
    const result = await rebalance(config, {
      apply: opts.apply,
      concurrency: opts.concurrency,
      offline: opts.offline,
      timeoutSeconds: opts.timeout === undefined ? undefined : opts.timeout / 1000,
      signal: interrupt.signal,
      onEvent: (e) => reporter.event(e),
      onPreflightPassed: extras.onPreflightPassed,
      onMovePoint: programHooks().onMovePoint,
    });
    process.exitCode = rebalanceExit(result);
    out.result(render(result, config.file, extras.applyWith), { ...result, exitCode: process.exitCode });
    return result;
  } finally {
    reporter.stop();
    interrupt.dispose();
  }
}

/** NDJSON with --json; on a terminal with --apply a bar over the units to move; else one line per event. Also remove-shard's. */
export function rebalanceReporter(opts: RebalanceFlags): Reporter<RebalanceEvent> {
  return reporterFor<RebalanceEvent>(opts, {
    // a group's step comes once per unit in one go: one line for the group
    lines: () => foldedLines<RebalanceEvent>({ key: (e) => (e.type === 'step' ? `${e.from}\0${e.to}\0${e.step}` : undefined), line: stepLine }, (e) => describe(e) || undefined),
    bars: opts.apply ? () => unitBars() : undefined,
  });
}

/** A bar with ETA over the units moved; moves and failures print above it (the six steps only in plain lines). */
export function unitBars(stream?: NodeJS.WriteStream): Reporter<RebalanceEvent> {
  const bar = countBar('units moved', { stream, tty: true })!;
  return {
    event(e) {
      if (e.type === 'plan') {
        if (e.resumed || e.unplaced || e.unplacedUnknown) bar.log(describe(e));
        if (e.moves) bar.start(e.moves);
      } else if (e.type === 'moved' || e.type === 'failed') {
        bar.log(describe(e));
        bar.tick();
      }
    },
    stop: () => bar.stop(),
  };
}

/** One progress line per rebalance event. */
export function describe(e: RebalanceEvent): string {
  switch (e.type) {
    case 'plan':
      return [
        e.unplaced ? `${e.unplaced} unit(s) live on the shards without a placement (created there after migrate): they count as placed where their rows are` : '',
        e.unplacedUnknown ? `units created on the shards after migrate were not looked for (${e.unplacedUnknown}); --apply looks before it changes anything` : '',
        e.resumed ? `${e.resumed} interrupted move(s) found in the journal; completing them first` : '',
      ].filter(Boolean).join('\n');
    case 'step':
      return `  ${e.unit}: ${e.from} → ${e.to} ${e.step}`;
    case 'moved':
      return `moved ${e.unit}: ${e.from} → ${e.to} (${formatCount(e.rows)} rows, ${e.online ? 'online' : 'offline'}${outage(e.outageSeconds)})`;
    case 'failed':
      return `FAILED ${e.unit}: ${e.from} → ${e.to}: ${e.reason}`;
  }
}

/** The line of a group's step (one unit: describe's): its first units and how many more. */
function stepLine(run: readonly RebalanceEvent[]): string {
  const steps = run as readonly Extract<RebalanceEvent, { type: 'step' }>[];
  const e = steps[0]!;
  if (steps.length === 1) return describe(e);
  const units = steps.map((x) => x.unit);
  const named = units.length > 3 ? `${units.slice(0, 3).join(', ')} and ${units.length - 3} more` : units.join(', ');
  return `  ${named}: ${e.from} → ${e.to} ${e.step}`;
}

/** The unit's write outage as the reporter says it. */
const outage = (s: number | undefined) => (s === undefined ? '' : `; writes refused ${formatSeconds(s)}`);

export function render(r: RebalanceResult, file: string, applyWith = `shardctl rebalance --apply --config ${file}`): string {
  const lines: string[] = [];
  if (r.moves.length === 0) return 'placements match the topology: nothing to move';
  lines.push(
    table(
      ['from', 'to', 'units', 'rows', 'bytes'],
      r.pairs.map((p) => [p.from, p.to, p.units, formatCount(p.rows), formatBytes(p.bytes)]),
    ),
  );
  const resumed = r.moves.filter((m) => m.resumeAfter);
  if (resumed.length) lines.push(`${resumed.length} interrupted move(s) to complete (${resumed.map((m) => `${m.unit} after ${m.resumeAfter}`).join(', ')})`);
  if (!r.applied) {
    lines.push(`${r.moves.length} unit(s) to move; nothing was changed. Apply with: ${applyWith}`);
    return lines.join('\n');
  }
  const moved = r.moves.filter((m) => m.status === 'moved').length;
  lines.push(`moved ${moved} of ${r.moves.length} unit(s) in ${formatSeconds(r.seconds)}`);
  for (const c of r.crossShard ?? []) lines.push(crossShardLine(c));
  const outages = r.moves.filter((m) => m.outageSeconds !== undefined).map((m) => m.outageSeconds!);
  if (outages.length) lines.push(`writes to a moving unit were refused for at most ${formatSeconds(Math.max(...outages))} (${r.moves.some((m) => m.online) ? 'online: the final catch-up, verify and flip' : 'offline: the whole copy'})`);
  for (const m of r.moves.filter((x) => x.status === 'failed')) lines.push(`FAILED ${m.unit} ${m.from} → ${m.to}: ${m.reason}`);
  if (!r.ok) lines.push('each failure above says where its unit stands; run the command again to retry');
  return lines.join('\n');
}

type Edit = Parameters<Engine['editConfigFile']>[1];

export interface TopologyEdit {
  edit: Edit;
  /** what the edit does, e.g. `tenant 7 pinned to s0` */
  done: string;
  /** the exact command that applies the preview */
  applyWith: string;
  /** the read-only mark of a cell takes effect on the shards as soon as the edit is written */
  readOnly?: boolean;
}

/**
 * `pin`, `unpin`, `mapping set`: without --apply the edit is only previewed (the config it would give,
 * validated, and the rebalance plan from it): no file is written and no server is changed. With
 * --apply the file is written once the rebalance's preflight passed (catalog reached, lock held, no
 * rollback window), then the moves run; a refused preflight leaves the file as it was.
 */
export async function editAndRebalance(opts: RebalanceFlags, e: TopologyEdit): Promise<void> {
  const config = await load(opts);
  const { applyReadOnly, editConfigFile, previewConfigEdit } = await import('../src/index.js');
  const out = output(opts);
  const next: Config = previewConfigEdit(config.file, e.edit);
  if (!opts.apply) {
    out.info(`preview: ${e.done} (${config.file} not changed)`);
    await runRebalance(next, opts, { applyWith: e.applyWith });
    return;
  }
  await runRebalance(next, opts, {
    onPreflightPassed: async () => {
      editConfigFile(config.file, e.edit);
      out.info(`${e.done} in ${config.file}`);
      // read-only takes effect now, on the shards as they are; it does not wait for the moves
      if (e.readOnly) await applyReadOnly(next);
    },
  });
}
