/**
 * `npm run bench -- --fixture plan`: `plan` at the scale of issue 15 — 1,000,000 tenants (jump) and
 * 50,000 cells (h3, shardResolution 7, an H3 index column at resolution 12; also with
 * --propose-mapping) — timed in this process with its RSS sampled. Target: each under 10 s.
 *
 * The rows are made on one embedded server (the monolith of a 4-shard fleet): two rows per tenant
 * by generate_series; for h3, two rows in each of 50,000 random distinct resolution-7 cells over the
 * globe (h3-js), loaded by COPY.
 */
import { readFileSync } from 'node:fs';
import { cellToParent, latLngToCell } from 'h3-js';
import { parse } from 'yaml';
import { stageFleet } from '../harness/demo/stage.js';
import { copyLinesInto, parseConfig, withClient, plan } from '../src/index.js';
import type { BenchArgs } from './args.js';
import { withRss } from './rss.js';

export interface PlanRun {
  name: string;
  units: number;
  rows: number;
  seconds: number;
  peakMB: number;
  startMB: number;
}

const TENANTS = 1_000_000;
const CELLS = 50_000;
const LIMIT_S = 10;

export async function planBenchScale(args: BenchArgs, log: (s: string) => void): Promise<{ runs: PlanRun[]; markdown: string }> {
  log(`staging ${args.shards} shards; ${TENANTS.toLocaleString('en-US')} tenants and ${CELLS.toLocaleString('en-US')} cells on the source…`);
  const stage = await stageFleet({ kind: 'pgbench', shards: args.shards, scale: 0.2, fleet: { settings: { autovacuum: 'off', ...args.settings } } });
  try {
    await withClient({ label: 'source', url: stage.config.source }, async (c) => {
      await c.query('CREATE TABLE plan_tenants (tenant_id bigint NOT NULL, payload text)');
      await c.query(`INSERT INTO plan_tenants SELECT g / 2, g::text FROM generate_series(2, ${2 * TENANTS + 1}) g`);
      await c.query('CREATE TABLE plan_cells (id bigint PRIMARY KEY, h3 bigint NOT NULL)');
      await copyLinesInto(c, 'plan_cells (id, h3)', cellRows());
      await c.query('VACUUM ANALYZE plan_tenants, plan_cells');
    });
    log('source loaded; planning…');
    const raw = parse(readFileSync(stage.configPath, 'utf8'));
    const shards = raw.shards.map((s: { id: string }) => s.id) as string[];
    const jump = parseConfig(JSON.stringify({ ...raw, strategy: { kind: 'jump', key: 'tenant_id' }, tables: [{ name: 'plan_tenants' }] }), 'plan: jump');
    const h3 = parseConfig(
      JSON.stringify({ ...raw, strategy: { kind: 'h3', shardResolution: 7, defaultShard: shards[0], mapping: [] }, tables: [{ name: 'plan_cells', cell: 'h3' }] }),
      'plan: h3',
    );
    const runs: PlanRun[] = [];
    const measure = async (name: string, fn: () => ReturnType<typeof plan>) => {
      const t0 = performance.now();
      const { value, rss } = await withRss(fn);
      const run = { name, units: value.units, rows: value.rows, seconds: (performance.now() - t0) / 1000, peakMB: rss.peakMB, startMB: rss.startMB };
      runs.push(run);
      log(`${name}: ${run.units} units, ${run.rows} rows in ${run.seconds.toFixed(2)} s, peak RSS ${run.peakMB.toFixed(0)} MiB (start ${run.startMB.toFixed(0)})`);
    };
    await measure(`jump, ${TENANTS.toLocaleString('en-US')} tenants`, () => plan(jump));
    await measure(`h3, ${CELLS.toLocaleString('en-US')} cells`, () => plan(h3));
    await measure(`h3, ${CELLS.toLocaleString('en-US')} cells, --propose-mapping ${shards.length}`, () => plan(h3, { proposeShards: shards.length }));
    const lines = ['| plan | units | rows | seconds | peak RSS (MiB) | target < 10 s |', '|---|---:|---:|---:|---:|---|'];
    for (const r of runs) {
      lines.push(`| ${r.name} | ${r.units.toLocaleString('en-US')} | ${r.rows.toLocaleString('en-US')} | ${r.seconds.toFixed(2)} | ${r.peakMB.toFixed(0)} (start ${r.startMB.toFixed(0)}) | ${r.seconds < LIMIT_S ? 'PASS' : '**FAIL**'} |`);
    }
    return { runs, markdown: `${lines.join('\n')}\n` };
  } finally {
    await stage.stop();
  }
}

/** Two rows in each of CELLS distinct resolution-7 cells: their resolution-12 indexes as bigint. */
function* cellRows(): Generator<string> {
  const seen = new Set<string>();
  let id = 0;
  // xorshift32: deterministic, and exact in 32-bit integer arithmetic (a float LCG loses bits and cycles)
  let x = 0x9e3779b9 | 0;
  const rnd = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
  while (seen.size < CELLS) {
    const lat = (Math.asin(2 * rnd() - 1) * 180) / Math.PI;
    const lng = rnd() * 360 - 180;
    const cell = latLngToCell(lat, lng, 12);
    const parent = cellToParent(cell, 7);
    if (seen.has(parent)) continue;
    seen.add(parent);
    const sibling = latLngToCell(lat + 1e-5, lng, 12);
    for (const c of [cell, cellToParent(sibling, 7) === parent ? sibling : cell]) yield `${++id}\t${BigInt(`0x${c}`)}\n`;
  }
}
