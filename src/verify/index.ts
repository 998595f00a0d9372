import pLimit from 'p-limit';
import type { Config } from '../config/types.js';
import { withClient, type Endpoint } from '../db/connect.js';
import { usageError } from '../errors.js';
import { shardEndpoint, sourceEndpoint } from '../db/endpoints.js';
import { loadModel } from '../tables/model.js';
import { checksOf } from './checks.js';
import { compareSchemas } from './drift.js';
import { readHomes } from './homes.js';
import { checkPlacement } from './placement.js';
import { compareReference } from './reference.js';
import { modelFromShards } from './model.js';
import { locate } from './report.js';
import { scanServer } from '../unit-copy/scan.js';
import { checkUnits, selectTables, withParents } from '../tables/select.js';
import type { Finding, VerifyOptions, VerifyResult } from './types.js';
import { byUnit, compareUnits } from './units.js';
import { compareCopies, crossShardCounts } from './copies.js';
import { rowHashes } from './hashes.js';

export type * from './types.js';
export { junitXml } from './junit.js';
export { formatReport, describe as describeFinding, resyncCommand } from './report.js';

/**
 * Proves the shards hold exactly the right data. Per unit and sharded table: row count and an
 * order-independent checksum on the source and on the unit's shard (its catalog placement, else
 * its route); rows on a shard their unit does not live on; units on two shards; reference tables
 * identical everywhere; schema drift. Everything is computed in SQL, one grouped query per table
 * per server, all servers at once (bounded by `concurrency`), inside one snapshot per server.
 * Takes no lock and writes nothing; while a migration runs it reports what it sees.
 *
 * Never throws for a difference: the result lists findings and the servers that could not be read
 * (the CLI exits 0 all match, 1 something differs, 3 a shard could not be read). Throws a UserError when it
 * cannot start (bad options: exit 2; source or catalog unreachable: exit 3).
 *
 * @example
 *   const r = await verify(loadConfig('shardctl.yaml'));
 *   if (!r.ok) console.log(formatReport(r));
 */
export async function verify(config: Config, opts: VerifyOptions = {}): Promise<VerifyResult> {
  const started = performance.now();
  const emit = opts.onEvent ?? (() => undefined);
  const placementOnly = Boolean(opts.placementOnly);
  const concurrency = opts.concurrency ?? config.shards.length + 1;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw usageError(`--concurrency must be a whole number of at least 1, got ${concurrency}`);

  const model = placementOnly ? await modelFromShards(config) : await withClient(sourceEndpoint(config), (c) => loadModel(config, c), APP);
  const tables = withParents(model, selectTables(model, opts.tables));
  if (opts.units) checkUnits(model, tables, opts.units);
  const homes = await readHomes(config, placementOnly);

  const servers: [string, Endpoint][] = [
    ...(placementOnly ? [] : [['source', sourceEndpoint(config)] as [string, Endpoint]]),
    ...config.shards.map((s) => [s.id, shardEndpoint(config, s.id)] as [string, Endpoint]),
  ];
  emit({ type: 'start', servers: servers.map(([id]) => id), tables: tables.length, placementsFrom: homes.from });
  const limit = pLimit(concurrency);
  const units = opts.units ? [...new Set(opts.units)] : undefined;
  const hashes = await rowHashes(servers, tables);
  const scans = await Promise.all(servers.map(([id, ep]) => scanServer(id, ep, { model, tables, units, limit, onEvent: emit, home: homes.home, hashes })));
  const source = placementOnly ? undefined : scans[0];
  const shardScans = scans.slice(placementOnly ? 0 : 1);
  const byShard = new Map(shardScans.map((s) => [s.server, s]));

  const sharded = tables.filter((t) => t.config.route.kind !== 'reference');
  const findings: Finding[] = [
    ...(source ? compareUnits(sharded, source, byShard, homes) : []),
    ...checkPlacement(tables, scans, homes),
    ...compareCopies(tables, source, byShard, homes),
    ...compareReference(tables, source, shardScans),
    ...compareSchemas(tables, source, shardScans),
  ];
  const errors = scans.flatMap((s) => (s.error ? [{ server: s.server, message: s.error }] : []));
  const warnings = [...homes.warnings];
  const unplaced = [...new Set(shardScans.flatMap((s) => sharded.flatMap((t) => [...(s.tables.get(t.name)?.units.keys() ?? [])])))].filter((u) => !homes.placed(u)).sort(byUnit);
  if (unplaced.length) {
    warnings.push(
      `${unplaced.length} unit(s) on the shards have no placement in the catalog (created there after migrate): ${unplaced.slice(0, 10).join(', ')}${unplaced.length > 10 ? ', …' : ''}; ` +
        'the next rebalance --apply, add-shard, pin, mapping set or remove-shard places them where their rows are',
    );
  }
  if (units) {
    const seen = new Set(scans.flatMap((s) => [...s.tables.values()].flatMap((t) => [...t.units.keys()])));
    const nowhere = units.filter((u) => !seen.has(u));
    if (nowhere.length) warnings.push(`no rows of unit(s) ${nowhere.slice(0, 10).join(', ')}${nowhere.length > 10 ? ', …' : ''} anywhere`);
  }
  const result: VerifyResult = {
    ok: errors.length === 0 && findings.length === 0,
    mode: placementOnly ? 'placement-only' : 'full',
    placementsFrom: homes.from,
    configFile: config.file,
    seconds: 0,
    units: new Set(scans.flatMap((s) => [...s.tables.values()].flatMap((t) => [...t.units.keys()]))).size,
    tables: tables.map((t) => t.name),
    shards: [],
    checks: checksOf(tables, shardScans, findings),
    findings,
    errors,
    crossShard: crossShardCounts(tables, source),
    warnings,
  };
  result.shards = shardScans.map((s) => {
    const here = result.checks.filter((c) => c.shard === s.server && c.kind === 'sharded');
    const unitsHere = new Set(sharded.flatMap((t) => [...(s.tables.get(t.name)?.units.keys() ?? [])]));
    return {
      shard: s.server,
      units: unitsHere.size,
      rows: here.reduce((a, c) => a + c.rows, 0),
      problems: findings.filter((f) => locate(f).some((l) => l.shard === s.server)).length,
      ...(s.error ? { error: s.error } : {}),
    };
  });
  result.seconds = (performance.now() - started) / 1000;
  return result;
}

const APP = { applicationName: 'shardctl verify' };
