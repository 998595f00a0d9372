/**
 * `npm run bench -- --fixture many`: cost per unit (issue 26). The same rows (id, tenant, an 80-byte
 * payload) migrated with checksums as a few large units and as many small ones, on one fleet:
 *   few:  --scale rows as 20 tenants;   many: the same rows as rows / 5 tenants (5 rows each).
 * The target: many ≤ 2 × few in wall time, peak RSS of the process < 300 MB. Shards emptied and the
 * catalog dropped before each run; the two cases alternate (--repeat), medians compared.
 */
import { startFleet, type Fleet } from '../harness/fleet/index.js';
import { parseConfig, type Config, withClient, migrate, type MigrateOptions } from '../src/index.js';
import { checkpointAll, resetFleet } from './fleet.js';
import { forceGc, withRss } from './rss.js';
import { postmasterPids, treeCpuSeconds } from './cpu.js';

export const MANY_TABLE = 'CREATE TABLE items (id bigint PRIMARY KEY, tenant bigint NOT NULL, payload text NOT NULL)';
export const MANY_INDEX = 'CREATE INDEX items_tenant ON items (tenant)';

export interface ManyRun {
  case: 'few' | 'many';
  tenants: number;
  rows: number;
  seconds: number;
  cpuS: number;
  /** CPU seconds of every server of the fleet (their backends included) during the run */
  serverCpuS: number;
  peakMB: number;
  batches: number;
  preflightS: number;
  batchesS: number;
  finishS: number;
}

export interface ManyTarget {
  name: string;
  measured: number;
  threshold: number;
  pass: boolean;
}

/** A fleet with `items` on every server; the source loaded by `fill` (tenants → rows made on the server). */
export async function stageItems(shards: number, settings: Record<string, string>): Promise<{ fleet: Fleet; config: (tenants: number) => Config; dataDirs: string[] }> {
  const fleet = await startFleet({ shards, replicas: 0, settings });
  for (const s of [fleet.source, ...fleet.shards.map((x) => x.primary)]) {
    await s.query(MANY_TABLE);
    await s.query(MANY_INDEX);
  }
  const doc = {
    source: fleet.source.url(),
    strategy: { kind: 'jump', key: 'tenant' },
    shards: fleet.shards.map((s) => ({ id: s.id, primary: s.primary.url() })),
    tables: [{ name: 'items' }],
  };
  const dataDirs = [fleet.source, ...fleet.shards.map((s) => s.primary)].map((s) => s.dataDir);
  return { fleet, config: () => parseConfig(JSON.stringify(doc), 'many-units bench'), dataDirs };
}

/** Replaces the source's rows by `rows` rows spread over `tenants` tenants (id order interleaves tenants). */
export async function fillItems(config: Config, rows: number, tenants: number): Promise<void> {
  await withClient({ label: 'source', url: config.source }, async (c) => {
    await c.query('TRUNCATE items');
    await c.query(`INSERT INTO items SELECT i, i % ${tenants}, md5(i::text) || md5((-i)::text) || lpad(i::text, 16, 'x') FROM generate_series(1, ${rows}) i`);
    await c.query('VACUUM ANALYZE items');
  });
}

/** One migrate of `items` on an emptied fleet: wall time, the process's CPU, peak RSS, and where the time went. */
export async function runItems(config: Config, o: Pick<MigrateOptions, 'concurrency' | 'batchRows' | 'verify'>, dataDirs: readonly string[] = []) {
  await resetFleet(config);
  await checkpointAll(config);
  forceGc();
  const cpu0 = process.cpuUsage();
  const servers0 = treeCpuSeconds(postmasterPids(dataDirs));
  const t0 = performance.now();
  let batches = 0;
  let started = t0;
  let lastBatch = t0;
  const onEvent: MigrateOptions['onEvent'] = (e) => {
    if (e.type === 'start') started = performance.now();
    if (e.type === 'batch') {
      batches++;
      lastBatch = performance.now();
    }
  };
  const { value: r, rss } = await withRss(() => migrate(config, { ...o, onEvent }));
  const cpu = process.cpuUsage(cpu0);
  const serverCpuS = treeCpuSeconds(postmasterPids(dataDirs)) - servers0;
  if (!r.ok) throw new Error(`migrate did not finish cleanly: ${r.failures.length} failures, ${r.errors.length} errors ${r.errors[0]?.error ?? ''}`);
  const end = t0 + r.seconds * 1000;
  const phases = { preflightS: (started - t0) / 1000, batchesS: (lastBatch - started) / 1000, finishS: (end - lastBatch) / 1000 };
  return { seconds: r.seconds, rows: r.rows, cpuS: (cpu.user + cpu.system) / 1e6, serverCpuS, peakMB: rss.peakMB, batches, ...phases };
}

export async function manyUnitsBench(
  args: { scale: number; shards: number; concurrency: number; batchRows?: number; repeat: number; settings: Record<string, string>; durable: boolean },
  log: (s: string) => void,
): Promise<{ runs: ManyRun[]; targets: ManyTarget[]; markdown: string }> {
  const rows = Math.round(args.scale);
  const cases = [
    { case: 'few' as const, tenants: 20 },
    { case: 'many' as const, tenants: Math.max(1, Math.round(rows / 5)) },
  ];
  const settings = { autovacuum: 'off', ...(args.durable ? { fsync: 'on', full_page_writes: 'on' } : {}), ...args.settings };
  log(`staging ${args.shards} shards for ${rows.toLocaleString('en-US')} rows as few and as many tenants…`);
  const { fleet, config, dataDirs } = await stageItems(args.shards, settings);
  const runs: ManyRun[] = [];
  try {
    for (let i = 0; i < args.repeat; i++) {
      for (const c of i % 2 ? [...cases].reverse() : cases) {
        const cfg = config(c.tenants);
        await fillItems(cfg, rows, c.tenants);
        const r = await runItems(cfg, { concurrency: args.concurrency, batchRows: args.batchRows, verify: true }, dataDirs);
        if (r.rows !== rows) throw new Error(`${c.case}: migrate moved ${r.rows} rows, the source holds ${rows}`);
        runs.push({ ...c, ...r });
        log(`${c.case} (${c.tenants.toLocaleString('en-US')} tenants): ${r.seconds.toFixed(2)} s, ${r.batches} batches, CPU ${r.cpuS.toFixed(1)} s (servers ${r.serverCpuS.toFixed(1)} s), peak RSS ${r.peakMB.toFixed(0)} MiB`);
      }
    }
  } finally {
    await fleet.stop();
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
  const few = median(runs.filter((r) => r.case === 'few').map((r) => r.seconds));
  const many = median(runs.filter((r) => r.case === 'many').map((r) => r.seconds));
  const cpuOf = (c: 'few' | 'many') => median(runs.filter((r) => r.case === c).map((r) => r.cpuS + r.serverCpuS));
  const peak = Math.max(...runs.filter((r) => r.case === 'many').map((r) => r.peakMB));
  const targets: ManyTarget[] = [
    { name: `${cases[1]!.tenants.toLocaleString('en-US')} tenants ≤ 2 × the time of 20 tenants (same rows, checksums on)`, measured: many / few, threshold: 2, pass: many / few <= 2 },
    { name: `CPU seconds (this process + the servers), ${cases[1]!.tenants.toLocaleString('en-US')} tenants ≤ 2 × 20 tenants (load-independent twin of the above)`, measured: cpuOf('many') / cpuOf('few'), threshold: 2, pass: cpuOf('many') / cpuOf('few') <= 2 },
    { name: `peak RSS at ${cases[1]!.tenants.toLocaleString('en-US')} tenants < 300 MiB`, measured: peak, threshold: 300, pass: peak < 300 },
  ];
  const lines = [
    '| case | tenants | rows | seconds | preflight s | batches s | finish s | rows/s | batches | process CPU s | servers CPU s | peak RSS MiB |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of runs) {
    lines.push(
      `| ${r.case} | ${r.tenants.toLocaleString('en-US')} | ${r.rows.toLocaleString('en-US')} | ${r.seconds.toFixed(2)} | ${r.preflightS.toFixed(2)} | ${r.batchesS.toFixed(2)} | ${r.finishS.toFixed(2)} | ` +
        `${Math.round(r.rows / r.seconds).toLocaleString('en-US')} | ${r.batches} | ${r.cpuS.toFixed(1)} | ${r.serverCpuS.toFixed(1)} | ${r.peakMB.toFixed(0)} |`,
    );
  }
  lines.push('', '| target | measured | result |', '|---|---:|---|');
  for (const t of targets) lines.push(`| ${t.name} | ${t.measured.toFixed(2)} | ${t.pass ? 'PASS' : '**FAIL**'} |`);
  return { runs, targets, markdown: `${lines.join('\n')}\n` };
}
