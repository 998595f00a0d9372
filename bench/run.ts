/**
 * `npm run bench` — the throughput benchmark of issues #3 and #4 (see USAGE in args.ts).
 *
 * Stages a real local fleet (embedded PostgreSQL: a monolith loaded with the POS fixture, empty
 * shards), then runs, in one measuring process (worker.ts) so the ratios compare like with like:
 *   a raw COPY baseline, not counted (the warm-up)
 *   → raw COPY baseline → migrate --no-verify → migrate (checksums)   (× --repeat)
 *   → verify → row-by-row sample (autocommit, then per-table transaction) → raw COPY baseline again
 * with the fleet emptied (shard tables truncated, catalog dropped, CHECKPOINT everywhere) before each
 * copy phase. Prints a Markdown table (or `--json`). Exit 0 whether or not the targets are met,
 * 1 on an error, 2 on bad usage, 130 on Ctrl-C. The fleet is stopped at the end, on error and on Ctrl-C.
 */
import os from 'node:os';
import { stageFleet, type Stage } from '../harness/demo/stage.js';
import { restaurantCount } from '../harness/fixtures/index.js';
import { ACCOUNTS_PER_BRANCH, fillPgbench } from './pgbench.js';
import { planBenchScale } from './plan-scale.js';
import { redactText } from '../src/index.js';
import { parseBenchArgs, USAGE, type BenchArgs } from './args.js';
import { locationBench } from './location.js';
import { manyUnitsBench } from './many-units.js';
import { citiesBench } from './cities.js';
import { guardsBench } from './guards.js';
import { cpuMeter, postmasterPids } from './cpu.js';
import { checkpointAll, resetFleet, vacuumShards } from './fleet.js';
import { machineState } from './machine.js';
import type { MeasuredPhase, PlanFacts } from './protocol.js';
import { evaluate, markdown, summarize, type BenchReport, type PhaseRun } from './report.js';
import { startWorker, type Worker } from './worker-client.js';
import { runOnline, type OnlineFigures, type OnlineLoad } from './online.js';
import { startTpcb } from './tpcb.js';
import { startWriter } from '../harness/fixtures/pos-writer.js';
import type { Config } from '../src/index.js';
import { runMoves, type MoveFigures } from './moves.js';
import { migrate } from '../src/index.js';

const log = (s: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${s}\n`);
const num = (n: number) => n.toLocaleString('en-US');

class Interrupted extends Error {}

async function main(argv: string[]): Promise<number> {
  let args: BenchArgs;
  try {
    args = parseBenchArgs(argv);
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }

  // Ctrl-C while the fixture loads: exit at once (the fleet's exit hook kills the servers and removes
  // their directory). Afterwards: abort the phase in flight, then stop the fleet in `finally`.
  let staged = false;
  let interrupted = false;
  let worker: Worker | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    if (!staged || interrupted) process.exit(130);
    interrupted = true;
    log(`${sig}: stopping the phase in flight, then the fleet (again to quit at once)`);
    worker?.interrupt();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  // the fixtures that stage their own fleets and print their own tables
  const standalone: Partial<Record<BenchArgs['fixture'], () => Promise<{ json: unknown; markdown: string }>>> = {
    location: async () => locationBench(args, log).then((r) => ({ json: { runs: r.runs, targets: r.targets }, markdown: r.markdown })),
    many: async () => manyUnitsBench(args, log).then((r) => ({ json: { runs: r.runs, targets: r.targets }, markdown: r.markdown })),
    cities: async () => citiesBench(args, log).then((r) => ({ json: { runs: r.runs, ratio: r.ratio, pass: r.pass }, markdown: r.markdown })),
    guards: async () => guardsBench(args, log).then((r) => ({ json: { runs: r.runs, pass: r.pass }, markdown: r.markdown })),
    plan: async () => planBenchScale(args, log).then((r) => ({ json: { runs: r.runs }, markdown: r.markdown })),
  };
  const alone = standalone[args.fixture];
  if (alone) {
    try {
      const r = await alone();
      process.stdout.write(args.json ? `${JSON.stringify(r.json, null, 2)}\n` : r.markdown);
      return 0;
    } catch (e) {
      log(`error: ${redactText(e instanceof Error ? (e.stack ?? e.message) : String(e))}`);
      return 1;
    }
  }

  const startedAt = new Date().toISOString();
  const before = await machineState();
  log(`machine before the run: load ${before.load.map((x) => x.toFixed(2)).join(' / ')}${before.busyPct === undefined ? '' : `, ${before.busyPct.toFixed(1)}% CPU busy`}`);
  let stage: Stage | undefined;
  try {
    const pgbench = args.fixture === 'pgbench';
    const tenants = pgbench ? args.scale : restaurantCount(args.scale);
    log(`staging ${args.shards} shards and the ${pgbench ? 'pgbench' : 'POS'} fixture at scale ${args.scale} (${tenants} ${pgbench ? 'branches' : 'restaurants'})${args.durable ? ', fsync on' : ''}…`);
    const t0 = performance.now();
    let lastLog = 0;
    stage = await stageFleet({
      kind: pgbench ? 'pgbench' : 'pos',
      shards: args.shards,
      // pgbench: a test-sized load, replaced below by pgbench's own volume made on the server
      scale: pgbench ? 0.2 : args.scale,
      // autovacuum off: it would wake on the freshly copied shard tables at random points of later
      // phases (a minute's naptime, 10-20 s phases) and add its noise to whichever runs then.
      fleet: { settings: { autovacuum: 'off', ...(args.durable ? { fsync: 'on', full_page_writes: 'on' } : {}), ...args.settings } },
      onProgress: (table, rows) => {
        if (performance.now() - lastLog > 10_000) {
          lastLog = performance.now();
          log(`  loading ${table}: ${num(rows)} rows`);
        }
      },
    });
    staged = true;
    if (pgbench) await fillPgbench(stage.config, args.scale);
    const fixtureLoadSeconds = (performance.now() - t0) / 1000;
    log(`fleet ready in ${fixtureLoadSeconds.toFixed(1)} s`);
    const config = stage.config;
    const fleet = stage.fleet;
    const dataDirs = [fleet.source, ...fleet.shards.map((x) => x.primary)].map((x) => x.dataDir);
    const roots = () => [process.pid, ...postmasterPids(dataDirs)];
    await checkpointAll(config);

    worker = startWorker();
    const plan: PlanFacts = await worker.plan(stage.configPath, pgbench ? 0 : args.sampleRows);
    log(`source: ${num(plan.sourceRows)} rows, ${(plan.sourceBytes / 1e9).toFixed(2)} GB; units per shard ${Object.values(plan.unitsPerShard).join('/')}; measuring process ${plan.idleRssMB.toFixed(0)} MiB`);

    const runs: PhaseRun[] = [];
    const notes: string[] = [];
    const measure = async (phase: MeasuredPhase, reset: boolean) => {
      if (interrupted) throw new Interrupted();
      if (reset) await resetFleet(config);
      const loadAt = os.loadavg()[0]!;
      log(`${phase}: running…`);
      const cpu = cpuMeter(roots);
      const out = await worker!.phase(phase, args.concurrency, args.batchRows);
      const share = cpu();
      const run: PhaseRun = { phase, run: runs.filter((r) => r.phase === phase).length + 1, order: runs.length + 1, ...out, load: [loadAt, os.loadavg()[0]!], ...(share ? { cpu: share } : {}) };
      runs.push(run);
      const mbps = run.bytes ? `, ${(run.bytes / 1e6 / run.seconds).toFixed(1)} MB/s` : '';
      const noise = share ? `; CPU: bench ${share.ownPct.toFixed(0)}%, others ${share.othersPct.toFixed(0)}%, steal ${share.stealPct.toFixed(0)}%` : '';
      log(`${phase}: ${run.seconds.toFixed(2)} s, ${num(run.rows)} rows${mbps}, peak RSS ${run.rss.peakMB.toFixed(0)} MiB (start ${run.rss.startMB.toFixed(0)})${noise}`);
      if ((phase === 'baseline' || phase.startsWith('migrate')) && run.rows !== plan.sourceRows) {
        throw new Error(`${phase} moved ${run.rows} rows, the source holds ${plan.sourceRows}: the comparison would be meaningless`);
      }
      return run;
    };

    if (args.onlineOnly) {
      await worker.close();
      worker = undefined;
      const online = await runOnline(config, onlineLoad(config, args), args.onlineSeconds, log);
      process.stdout.write(args.json ? `${JSON.stringify({ facts: { args, rows: plan.sourceRows, sourceBytes: plan.sourceBytes, machine: { before, loadEnd: os.loadavg() } }, online }, null, 2)}\n` : `${onlineNote(online, args.onlineSeconds)}\n`);
      return 0;
    }
    if (args.movesOnly) {
      await worker.close();
      worker = undefined;
      if (!(await migrate(config, { concurrency: args.concurrency, verify: false })).ok) throw new Error('migrate did not finish cleanly');
      const mv = await runMoves(config, log, { rows: args.movesRows, tenfold: args.movesTenfold });
      process.stdout.write(args.json ? `${JSON.stringify({ facts: { args, rows: plan.sourceRows, machine: { before, loadEnd: os.loadavg() } }, moves: mv }, null, 2)}\n` : `${movesNote(mv)}\n`);
      return 0;
    }
    // Not counted: the first copy after the load reads rows nobody has read yet (it sets their hint
    // bits, and its pages come cold), 10-20% slower than the later ones; whichever phase came first
    // would carry that.
    await resetFleet(config);
    log(`warm-up (a raw COPY baseline, not counted): ${(await worker.phase('baseline', args.concurrency, args.batchRows)).seconds.toFixed(2)} s`);
    for (let i = 0; i < args.repeat; i++) {
      await measure('baseline', true);
      await measure('migrate-no-verify', true);
      if (pgbench) {
        // the levers of issue 15, each against the default migrate in the same cycle
        await measure('migrate-text', true);
        await measure('migrate-indexes-during', true);
      }
      await measure('migrate', true);
    }
    // The fleet now holds what the checksummed migrate wrote: verify it, then the row-by-row sample on
    // top. Untimed first: what autovacuum (off during the bench) would have done to the shards by
    // the time anyone verifies them — statistics for the planner, hint bits set.
    await vacuumShards(config);
    await checkpointAll(config);
    const v = await measure('verify', false);
    if (v.verify && !v.verify.ok) {
      notes.push(`verify exited ${v.verify.exitCode} with ${v.verify.findings} findings on freshly migrated data: investigate before trusting its time`);
      log('WARNING: verify did not report the migrated fleet as exact');
    }
    if (!pgbench) {
      await measure('row-by-row', false);
      await measure('row-by-row-tx', false);
    }
    await measure('baseline', true);

    // online migration (last: it fences the monolith for good at its cutover); POS only (its write load)
    await worker.close();
    worker = undefined;
    const online = pgbench ? undefined : await resetFleet(config).then(() => runOnline(config, onlineLoad(config, args), args.onlineSeconds, log));
    if (online) notes.push(onlineNote(online, args.onlineSeconds));
    // rebalance moves on the shards the cutover left: the biggest tenant online, then back offline
    if (online) notes.push(movesNote(await runMoves(config, log, { rows: args.movesRows, tenfold: args.movesTenfold })));

    const summary = summarize(runs);
    const rbr = summary.find((s) => s.phase === 'row-by-row');
    const bases = runs.filter((r) => r.phase === 'baseline').map((r) => r.seconds);
    notes.push(`noise: the raw baseline ran ${bases.length}× (before each migrate pair and once at the end), ${bases.map((s) => s.toFixed(1)).join(' s, ')} s — a spread of ${((100 * (Math.max(...bases) - Math.min(...bases))) / Math.min(...bases)).toFixed(0)}%.`);
    if (rbr) notes.push(
      `row-by-row: ${num(plan.sample.rows)} rows of orders + order_items (${plan.sample.units} whole restaurants), deleted from their shard (untimed) and re-inserted one parameterised INSERT per row; ` +
        `at ${num(Math.round(rbr.rowsPerS))} rows/s the ${num(plan.sourceRows)} rows would take ~${(plan.sourceRows / rbr.rowsPerS / 60).toFixed(0)} min.` +
        (args.durable ? ' The servers are durable (fsync on): each autocommit waits for its WAL flush, as in production.' : ' The fleet runs with fsync off (--fast), so an autocommit costs no WAL flush, which flatters row-by-row.'),
    );
    const report: BenchReport = {
      facts: {
        args,
        tenants,
        rows: plan.sourceRows,
        sourceBytes: plan.sourceBytes,
        fixtureLoadSeconds,
        sample: plan.sample,
        machine: { before, loadEnd: os.loadavg() },
        idleRssMB: plan.idleRssMB,
        startedAt,
      },
      runs,
      summary,
      targets: evaluate(summary),
      notes,
    };
    process.stdout.write(args.json ? `${JSON.stringify(report, null, 2)}\n` : markdown(report));
    return 0;
  } catch (e) {
    if (interrupted || e instanceof Interrupted) {
      log('interrupted');
      return 130;
    }
    log(`error: ${redactText(e instanceof Error ? (e.stack ?? e.message) : String(e))}`);
    return 1;
  } finally {
    await worker?.close();
    if (stage) {
      log('stopping the fleet…');
      await stage.stop().catch((e) => log(`could not stop the fleet cleanly: ${redactText(String(e))}`));
    }
  }
}

/** The online phase's figures against the issue's targets, as one line of the report. */
function movesNote(mv: MoveFigures): string {
  return (
    `moves (rebalance, issue 14): tenant ${mv.tenant} (${num(mv.rows)} rows, ${(100 * mv.share).toFixed(1)}% of the sharded rows) under one writing connection: ` +
    `online ${mv.online.from} → ${mv.online.to} refused its writes for ${mv.online.outageS.toFixed(2)} s (longest gap between the writer's commits ${mv.online.longestGapS.toFixed(2)} s, move ${mv.online.seconds.toFixed(1)} s); ` +
    `offline back refused them for ${mv.offline.outageS.toFixed(2)} s (gap ${mv.offline.longestGapS.toFixed(2)} s, move ${mv.offline.seconds.toFixed(1)} s): ` +
    `online's outage is ${(mv.online.outageS / mv.offline.outageS).toFixed(2)}× offline's.` +
    mv.sized
      .map(
        (s) =>
          ` Tenant ${s.tenant} grown by ${num(s.rows)} rows, moved online ${s.from} → ${s.to} in ${s.seconds.toFixed(1)} s: writes refused ${s.outageS.toFixed(2)} s, ` +
          `longest gap between the writer's commits ${s.longestGapS.toFixed(2)} s (target ≤ 1 s, ≤ 3 s loaded; load ${s.loadPerCore.toFixed(1)} per core): ${s.pass ? 'PASS' : 'FAIL'}; ` +
          `${num(s.provenRows ?? 0)} changed rows proven while writes went on, ${num(s.checkedRows ?? 0)} checked inside the fence.`,
      )
      .join('')
  );
}

/** The online phase's write load: the POS writer, or pgbench's TPC-B-like script from 4 clients (issue 25's yardstick). */
function onlineLoad(config: Config, args: BenchArgs): OnlineLoad {
  if (args.fixture === 'pgbench') {
    return {
      name: "pgbench's TPC-B-like script, 4 clients",
      start: (busy, seed) => startTpcb(config.source, { clients: busy ? 4 : 1, pauseMs: busy ? 0 : 20, branches: args.scale, accountsPerBranch: ACCOUNTS_PER_BRANCH, seed }),
      accounts: 'pgbench_accounts',
      setup: 'ALTER TABLE pgbench_history REPLICA IDENTITY FULL',
    };
  }
  const restaurants = restaurantCount(args.scale);
  return { name: 'the POS writer, 3 connections', start: (busy, seed) => startWriter(config.source, restaurants, { workers: busy ? 3 : 1, pauseMs: busy ? 0 : 20, seed }) };
}

function onlineNote(o: OnlineFigures, seconds: number): string {
  const ratio = o.applyChangesPerS / o.directChangesPerS;
  const capacity = o.backlogChangesPerS / o.directChangesPerS;
  const big = o.bigUpdate
    ? `an UPDATE of all ${num(o.bigUpdate.rows)} accounts was applied ${o.bigUpdate.seconds.toFixed(1)} s after it started, the follower's process peaking at ${o.bigUpdate.peakRssMB.toFixed(0)} MiB RSS (target < 300 MiB: ${o.bigUpdate.peakRssMB < 300 ? 'PASS' : 'FAIL'}); `
    : '';
  const phases = Object.entries(o.cutoverPhasesMs).map(([k, v]) => `${k} ${v} ms`).join(', ');
  return (
    `online (migrate --follow, then cutover): the write load alone took ${num(Math.round(o.directChangesPerS))} changed rows/s on the monolith; ` +
    `while followed it took ${num(Math.round(o.loadChangesPerS))} rows/s for ${seconds} s and the follower applied ${num(Math.round(o.applyChangesPerS))} source changes/s until it had caught up ` +
    `(${ratio.toFixed(2)}× the monolith's own rate, target ≥ 0.5×: ${ratio >= 0.5 ? 'PASS' : 'FAIL'}; ${num(o.lagBytesAtEnd)} bytes behind when the load stopped, caught up ${o.drainSeconds.toFixed(1)} s later); ` +
    `on a backlog of the same load, alone on the machine, it applied ${num(Math.round(o.backlogChangesPerS))} source changes/s ` +
    `(${capacity.toFixed(2)}× the monolith's own rate measured in the same run, target ≥ 2×: ${capacity >= 2 ? 'PASS' : 'FAIL'}; peak RSS ${o.backlogPeakRssMB.toFixed(0)} MiB); ` +
    big +
    `cutover under a steady load refused writes for ${(o.outageMs / 1000).toFixed(2)} s (target < 5 s: ${o.outageMs < 5000 ? 'PASS' : 'FAIL'}; ${num(o.cutoverCheckedRows)} changed rows re-proved; ${phases}); ` +
    `the initial copy took ${o.copySeconds.toFixed(1)} s.`
  );
}

process.exitCode = await main(process.argv.slice(2));
