/**
 * The measuring process (see protocol.ts): receives `plan` then `phase` requests from bench/run.ts
 * over IPC, runs each phase with its RSS sampled, and replies. SIGINT (Ctrl-C reaches the whole
 * process group) aborts the phase in flight; the parent then stops the fleet.
 */
import { loadConfig, redactText } from '../src/index.js';
import { rawBaseline } from './baseline.js';
import { planBench, type BenchPlan } from './fleet.js';
import { runMigrate, runVerify } from './phases.js';
import type { PhaseOutcome, WorkerReply, WorkerRequest } from './protocol.js';
import { pickSample, rowByRow, type RowByRowSample } from './rowbyrow.js';
import { forceGc, withRss } from './rss.js';

const ac = new AbortController();
process.on('SIGINT', () => ac.abort());
process.on('SIGTERM', () => ac.abort());
process.on('disconnect', () => process.exit(ac.signal.aborted ? 130 : 0));

let plan: BenchPlan | undefined;
let sample: RowByRowSample | undefined;

const reply = (r: WorkerReply) => process.send!(r);

process.on('message', (msg: WorkerRequest) => {
  handle(msg).then(
    (r) => reply(r),
    (e: unknown) => reply({ id: msg.id, ok: false, aborted: ac.signal.aborted, error: redactText(e instanceof Error ? (e.stack ?? e.message) : String(e)) }),
  );
});

async function handle(msg: WorkerRequest): Promise<WorkerReply> {
  if (msg.type === 'plan') {
    plan = await planBench(loadConfig(msg.configPath));
    // no row-by-row phase without a sample (the pgbench fixture has none)
    sample = msg.sampleRows > 0 ? await pickSample(plan, msg.sampleRows) : { units: [], rows: {}, total: 0 };
    forceGc();
    return {
      id: msg.id,
      ok: true,
      plan: {
        sourceRows: plan.sourceRows,
        sourceBytes: plan.sourceBytes,
        unitsPerShard: Object.fromEntries(plan.shards.map((s) => [s.id, s.units.length])),
        sample: { units: sample.units.length, rows: sample.total },
        idleRssMB: process.memoryUsage().rss / 1024 / 1024,
      },
    };
  }
  if (!plan || !sample) throw new Error('internal: phase before plan');
  ac.signal.throwIfAborted();
  return { id: msg.id, ok: true, phase: await phase(plan, sample, msg.phase, msg.concurrency, msg.batchRows) };
}

async function phase(p: BenchPlan, s: RowByRowSample, name: string, concurrency: number, batchRows?: number): Promise<PhaseOutcome> {
  const t0 = { at: 0 };
  const { value, rss } = await withRss(async (): Promise<Omit<PhaseOutcome, 'rss'>> => {
    t0.at = performance.now();
    const seconds = () => (performance.now() - t0.at) / 1000;
    switch (name) {
      case 'baseline': {
        const r = await rawBaseline(p, concurrency, ac.signal);
        return { seconds: seconds(), rows: r.rows, bytes: r.bytes };
      }
      case 'migrate-no-verify':
      case 'migrate':
      case 'migrate-text':
      case 'migrate-indexes-during': {
        const r = await runMigrate(p, {
          concurrency, batchRows, verify: name !== 'migrate-no-verify', signal: ac.signal,
          copyFormat: name === 'migrate-text' ? 'text' : 'auto', indexesAfter: name !== 'migrate-indexes-during',
        });
        return { seconds: seconds(), rows: r.result.rows, bytes: r.result.bytes, breakdown: r.breakdown };
      }
      case 'verify': {
        const r = await runVerify(p);
        // wall time as the caller sees it (the engine's own r.seconds is reported alongside)
        return { seconds: seconds(), rows: r.rows, bytes: 0, verify: { ok: r.ok, exitCode: r.exitCode, findings: r.findings } };
      }
      case 'row-by-row':
      case 'row-by-row-tx': {
        const r = await rowByRow(p, s, name === 'row-by-row' ? 'autocommit' : 'transaction', ac.signal);
        // only the inserts are timed (the untimed DELETE that makes room comes first)
        return { seconds: r.seconds, rows: r.rows, bytes: 0 };
      }
      default:
        throw new Error(`internal: unknown phase ${name}`);
    }
  });
  return { ...value, rss };
}
