/**
 * `npm run bench -- --fixture location`: the H3 routes against the jump route on the very same rows
 * (so at exactly equal row width), at two scales (the second 4× the first), migrate with checksums.
 *
 * One location fleet per scale. Each variant is a config over the same servers that lists one table
 * with one route: `locations` by jump on profile_id and by lat/lng; `bumps` by jump on user1_id, by
 * lat/lng and by its res-12 h3_index column. Shards emptied and the catalog dropped before each.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { stageFleet } from '../harness/demo/stage.js';
import { profileCount } from '../harness/fixtures/location.js';
import { parseConfig, migrate } from '../src/index.js';
import type { BenchArgs } from './args.js';
import { checkpointAll, resetFleet } from './fleet.js';

type Route = 'jump' | 'latlng' | 'h3index';

interface Variant {
  table: 'locations' | 'bumps';
  route: Route;
}

const VARIANTS: Variant[] = [
  { table: 'locations', route: 'jump' },
  { table: 'locations', route: 'latlng' },
  { table: 'bumps', route: 'jump' },
  { table: 'bumps', route: 'latlng' },
  { table: 'bumps', route: 'h3index' },
];

const TABLES: Record<string, Record<Route, Record<string, string> | undefined>> = {
  locations: { jump: { key: 'profile_id' }, latlng: { lat: 'latitude', lng: 'longitude' }, h3index: undefined },
  bumps: { jump: { key: 'user1_id' }, latlng: { lat: 'latitude', lng: 'longitude' }, h3index: { cell: 'h3_index' } },
};

export interface LocationRun {
  scale: number;
  table: string;
  route: Route;
  rows: number;
  seconds: number;
  rowsPerS: number;
}

export interface LocationTarget {
  name: string;
  measured: number;
  threshold: number;
  op: '>=' | '<=';
  pass: boolean;
}

export async function locationBench(args: BenchArgs, log: (s: string) => void): Promise<{ runs: LocationRun[]; targets: LocationTarget[]; markdown: string }> {
  const runs: LocationRun[] = [];
  for (const scale of [args.scale, args.scale * 4]) {
    log(`staging ${args.shards} shards and the location fixture at scale ${scale} (${profileCount(scale)} profiles)…`);
    const stage = await stageFleet({
      kind: 'location',
      shards: args.shards,
      scale,
      fleet: { settings: { autovacuum: 'off', ...(args.durable ? { fsync: 'on', full_page_writes: 'on' } : {}), ...args.settings } },
    });
    try {
      const raw = parse(readFileSync(stage.configPath, 'utf8'));
      for (const v of VARIANTS) {
        const strategy = v.route === 'jump' ? { kind: 'jump', key: TABLES[v.table]![v.route]!.key } : raw.strategy;
        const config = parseConfig(JSON.stringify({ ...raw, strategy, tables: [{ name: v.table, ...TABLES[v.table]![v.route] }] }), `${v.table} by ${v.route}`);
        await resetFleet(config);
        await checkpointAll(config);
        const r = await migrate(config, { concurrency: args.concurrency, batchRows: args.batchRows });
        if (!r.ok) throw new Error(`${v.table} by ${v.route}: migrate did not finish cleanly (${r.failures.length} failures, ${r.errors.length} errors)`);
        runs.push({ scale, table: v.table, route: v.route, rows: r.rows, seconds: r.seconds, rowsPerS: r.rows / r.seconds });
        log(`${v.table} by ${v.route} at scale ${scale}: ${r.rows} rows in ${r.seconds.toFixed(2)} s (${Math.round(r.rows / r.seconds)} rows/s)`);
      }
    } finally {
      await stage.stop();
    }
  }
  const targets = evaluate(runs, args.scale * 4, args.scale);
  return { runs, targets, markdown: markdown(runs, targets) };
}

function evaluate(runs: LocationRun[], big: number, small: number): LocationTarget[] {
  const at = (scale: number, table: string, route: Route) => runs.find((r) => r.scale === scale && r.table === table && r.route === route)!;
  const out: LocationTarget[] = [];
  for (const [table, route] of [['locations', 'latlng'], ['bumps', 'latlng'], ['bumps', 'h3index']] as const) {
    const ratio = at(big, table, route).rowsPerS / at(big, table, 'jump').rowsPerS;
    out.push({ name: `${table} by ${route} rows/s ≥ 0.5 × by jump (same rows, scale ${big})`, measured: ratio, threshold: 0.5, op: '>=', pass: ratio >= 0.5 });
  }
  for (const [table, route] of [['locations', 'latlng'], ['bumps', 'latlng'], ['bumps', 'h3index']] as const) {
    const ratio = at(big, table, route).seconds / at(small, table, route).seconds;
    out.push({ name: `${table} by ${route}: 4× the rows ≤ 4.5 × the time`, measured: ratio, threshold: 4.5, op: '<=', pass: ratio <= 4.5 });
  }
  return out;
}

function markdown(runs: LocationRun[], targets: LocationTarget[]): string {
  const lines = ['| table | route | scale | rows | seconds | rows/s |', '|---|---|---:|---:|---:|---:|'];
  for (const r of runs) lines.push(`| ${r.table} | ${r.route} | ${r.scale} | ${r.rows.toLocaleString('en-US')} | ${r.seconds.toFixed(2)} | ${Math.round(r.rowsPerS).toLocaleString('en-US')} |`);
  lines.push('', '| target | measured | result |', '|---|---:|---|');
  for (const t of targets) lines.push(`| ${t.name} | ${t.measured.toFixed(2)} × | ${t.pass ? 'PASS' : '**FAIL**'} |`);
  return `${lines.join('\n')}\n`;
}
