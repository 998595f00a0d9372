import type { BenchArgs } from './args.js';
import type { CpuShare } from './cpu.js';
import type { MachineState } from './machine.js';
import type { MeasuredPhase, PhaseOutcome } from './protocol.js';

export type PhaseName = MeasuredPhase;

/** One run of one phase. `bytes` is COPY text moved (0 for verify and row-by-row). */
export interface PhaseRun extends PhaseOutcome {
  phase: PhaseName;
  /** 1-based, in the order the runs happened within this phase */
  run: number;
  /** position in the whole bench (1 = first phase run) */
  order: number;
  /** 1-minute load average at the start and end of the phase (the bench's own ~5 busy processes included) */
  load: [number, number];
  /** CPU use during the phase: the bench's processes, everyone else's, the hypervisor's steal (Linux) */
  cpu?: CpuShare;
}

export interface BenchFacts {
  args: BenchArgs;
  /** restaurants (POS) or branches (pgbench) */
  tenants: number;
  /** rows of the sharded tables on the source */
  rows: number;
  /** on-disk size of the sharded tables on the source */
  sourceBytes: number;
  fixtureLoadSeconds: number;
  sample: { units: number; rows: number };
  /** before anything started (busyPct: other people's work) and after the last phase */
  machine: { before: MachineState; loadEnd: number[] };
  /** RSS of the measuring process with the engine loaded, before any phase */
  idleRssMB: number;
  startedAt: string;
}

export interface PhaseSummary {
  phase: PhaseName;
  runs: number;
  /** the fastest run */
  seconds: number;
  /** the median run: the targets compare medians (alternated runs on a shared machine) */
  medianSeconds: number;
  /** the median of the runs' CPU seconds (the bench's processes), when measured */
  medianCpuS?: number;
  allSeconds: number[];
  MBps: number;
  rowsPerS: number;
  /** the highest peak over its runs */
  peakRssMB: number;
}

export interface Target {
  name: string;
  measured: number;
  unit: string;
  threshold: number;
  /** ≥ or < / ≤ the threshold */
  op: '>=' | '<' | '<=';
  pass: boolean;
}

export interface BenchReport {
  facts: BenchFacts;
  runs: PhaseRun[];
  summary: PhaseSummary[];
  targets: Target[];
  notes: string[];
}

const LABEL: Record<PhaseName, string> = {
  baseline: 'raw COPY baseline (no catalog, no checksums)',
  'migrate-no-verify': '`migrate --no-verify`',
  migrate: '`migrate` (per-unit checksums)',
  'migrate-text': '`migrate`, every table in text COPY (the binary lever off)',
  'migrate-indexes-during': '`migrate --no-indexes-after` (checksums; secondary indexes kept during the copy)',
  verify: '`verify` (all units, source vs shards)',
  'row-by-row': 'row-by-row INSERT, autocommit (seed approach, sample)',
  'row-by-row-tx': 'row-by-row INSERT, one tx per restaurant table (seed Go code, sample)',
};

/** Best (fastest) run per phase; RSS is the worst peak of its runs. */
export function summarize(runs: readonly PhaseRun[]): PhaseSummary[] {
  const phases = [...new Set(runs.map((r) => r.phase))];
  return phases.map((phase) => {
    const mine = runs.filter((r) => r.phase === phase);
    const best = mine.reduce((a, b) => (b.seconds < a.seconds ? b : a));
    const cpu = mine.flatMap((r) => (r.cpu ? [r.cpu.ownS] : []));
    return {
      phase,
      runs: mine.length,
      seconds: best.seconds,
      medianSeconds: median(mine.map((r) => r.seconds)),
      ...(cpu.length ? { medianCpuS: median(cpu) } : {}),
      allSeconds: mine.map((r) => r.seconds),
      MBps: best.bytes / 1e6 / best.seconds,
      rowsPerS: best.rows / best.seconds,
      peakRssMB: Math.max(...mine.map((r) => r.rss.peakMB)),
    };
  });
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function evaluate(summary: readonly PhaseSummary[]): Target[] {
  const get = (p: PhaseName) => summary.find((s) => s.phase === p);
  const base = get('baseline');
  const nv = get('migrate-no-verify');
  const mv = get('migrate');
  const ver = get('verify');
  const rbr = get('row-by-row');
  const out: Target[] = [];
  const t = (name: string, measured: number, op: Target['op'], threshold: number, unit: string) =>
    out.push({ name, measured, unit, threshold, op, pass: op === '>=' ? measured >= threshold : op === '<' ? measured < threshold : measured <= threshold });
  // issue 26's targets are times against the raw pipe's time (the DBA's own psql | psql script), medians of alternated runs
  if (base && nv) t('migrate --no-verify median time ≤ 0.9 × raw baseline median', nv.medianSeconds / base.medianSeconds, '<=', 0.9, '×');
  if (base && mv) t('migrate (checksums) median time ≤ 1.1 × raw baseline median', mv.medianSeconds / base.medianSeconds, '<=', 1.1, '×');
  if (base?.medianCpuS && mv?.medianCpuS) t('migrate (checksums) CPU seconds ≤ 1.25 × raw baseline CPU seconds (median)', mv.medianCpuS / base.medianCpuS, '<=', 1.25, '×');
  if (mv && rbr) t('migrate (checksums) ≥ 50 × row-by-row rows/s', mv.rowsPerS / rbr.rowsPerS, '>=', 50, '×');
  const migrateRss = [nv, mv, get('migrate-text'), get('migrate-indexes-during')].filter((x): x is PhaseSummary => Boolean(x));
  if (migrateRss.length) t('peak RSS during migrate < 250 MiB', Math.max(...migrateRss.map((x) => x.peakRssMB)), '<', 250, 'MiB');
  const mt = get('migrate-text');
  const mi = get('migrate-indexes-during');
  if (mv && mt) t('lever: migrate (binary where proven) time < migrate (all text) time', mv.seconds / mt.seconds, '<', 1, '×');
  if (mv && mi) t('lever: migrate (indexes after the load) time < migrate --no-indexes-after time', mv.seconds / mi.seconds, '<', 1, '×');
  if (ver && mv) t('verify time ≤ 0.5 × migrate time', ver.seconds / mv.seconds, '<=', 0.5, '×');
  if (ver) t('peak RSS during verify < 150 MiB', ver.peakRssMB, '<', 150, 'MiB');
  return out;
}

const f1 = (n: number) => n.toFixed(1);
const f2 = (n: number) => n.toFixed(2);
const int = (n: number) => Math.round(n).toLocaleString('en-US');
const gb = (b: number) => `${(b / 1e9).toFixed(2)} GB`;

/** The Markdown the lead pastes into the README. */
export function markdown(r: BenchReport): string {
  const { facts: f } = r;
  const copied = r.runs.find((x) => x.phase === 'baseline')?.bytes ?? 0;
  const lines: string[] = [];
  const pgbench = f.args.fixture === 'pgbench';
  lines.push(`### shardctl bench — ${pgbench ? 'pgbench' : 'POS'} scale ${f.args.scale}, ${f.args.shards} shards, concurrency ${f.args.concurrency}${f.args.batchRows ? `, --batch-rows ${f.args.batchRows}` : ''}`);
  lines.push('');
  lines.push(
    `${int(f.tenants)} ${pgbench ? 'branches' : 'restaurants'} · ${int(f.rows)} rows · ${gb(f.sourceBytes)} on the source (sharded tables: heap + TOAST + indexes) · ` +
      `${gb(copied)} of COPY text moved per copy phase · fixture load ${f1(f.fixtureLoadSeconds)} s`,
  );
  const m = f.machine.before;
  const busy = m.busyPct === undefined ? '' : `, ${f1(m.busyPct)}% CPU busy`;
  lines.push(
    `Machine: ${m.cpus} CPUs shared by the source, ${f.args.shards} shards (local embedded PostgreSQL${f.args.durable ? ', fsync on' : ', fsync off'}, autovacuum off${Object.entries(f.args.settings).map(([k, v]) => `, ${k}=${v}`).join('')}; shards VACUUM ANALYZEd before verify) and Node ${m.node}; ` +
      `before the run: load ${m.load.map(f2).join(' / ')} (1/5/15 min)${busy}; after: load ${f.machine.loadEnd.map(f2).join(' / ')}. Started ${f.startedAt}.`,
  );
  lines.push(
    `Each phase: the fastest of its runs (every run listed, in seconds); RSS: the highest peak of its runs, sampled every 50 ms in the measuring process ` +
      `(${int(f.idleRssMB)} MiB with the engine loaded, before any phase). MB = 10⁶ bytes of COPY text. ` +
      `Others’ CPU / steal: share of all CPUs used during each run by processes outside the bench / taken by the hypervisor.`,
  );
  lines.push('');
  lines.push('| phase | runs (s) | fastest s | median s | median CPU s | MB/s | rows/s | peak RSS (MiB) | others’ CPU / steal (%) |');
  lines.push('|---|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const s of r.summary) {
    const mbps = s.MBps > 0 ? f1(s.MBps) : '—';
    const noise = r.runs
      .filter((x) => x.phase === s.phase)
      .map((x) => (x.cpu ? `${x.cpu.othersPct.toFixed(0)} / ${x.cpu.stealPct.toFixed(0)}` : '?'))
      .join(', ');
    lines.push(`| ${LABEL[s.phase]} | ${s.allSeconds.map(f1).join(', ')} | ${f1(s.seconds)} | ${f1(s.medianSeconds)} | ${s.medianCpuS === undefined ? '—' : f1(s.medianCpuS)} | ${mbps} | ${int(s.rowsPerS)} | ${int(s.peakRssMB)} | ${noise} |`);
  }
  lines.push('');
  lines.push('| target | measured | result |');
  lines.push('|---|---:|---|');
  for (const t of r.targets) {
    const v = t.unit === '×' ? `${t.measured >= 10 ? f1(t.measured) : f2(t.measured)} ×` : `${int(t.measured)} ${t.unit}`;
    lines.push(`| ${t.name} | ${v} | ${t.pass ? 'PASS' : '**FAIL**'} |`);
  }
  const mig = r.runs.filter((x) => x.breakdown);
  if (mig.length) {
    lines.push('');
    lines.push(
      'Where migrate spends its time (per run, from the engine\'s own step events): wall seconds of each step of the run; inside `batches`, ' +
        'Σ = seconds summed over the batches (stream-seconds: they add up to more than the wall time when batches run side by side).',
    );
    lines.push('');
    lines.push('| run | preflight | reference | batches (wall) | Σ prepare | Σ copy | Σ checksums | Σ commit | Σ catalog | indexes | sequences | guards + finish | batches | copy-phase MB/s |');
    lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const m of mig) {
      const b = m.breakdown!;
      const cells = [b.preflightS, b.referenceS, b.batchesS, b.prepareS, b.copyS, b.checksumsS, b.commitS, b.catalogS, b.indexesS, b.sequencesS, b.finishS].map(f2);
      lines.push(`| ${m.phase} #${m.run} | ${cells.join(' | ')} | ${b.batches} | ${f1(b.copyMBps)} |`);
    }
  }
  if (r.notes.length) {
    lines.push('');
    for (const n of r.notes) lines.push(`- ${n}`);
  }
  return lines.join('\n') + '\n';
}
