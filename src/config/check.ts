import { parentCell } from '../cells/h3.js';
import { parseVia, type RawConfig } from './schema.js';
import type { Config, TableConfig, TableRoute, UnitRoute } from './types.js';

export interface Problem {
  path: (string | number)[];
  message: string;
}

/**
 * The checks that span keys (ids that must exist, parents listed before children, routing columns that
 * fit the strategy) and the conversion of the raw document into the engine's `Config`.
 * Returns every problem at once; a config with problems never becomes a `Config`.
 */
export function checkConfig(raw: RawConfig, file: string): { config?: Config; problems: Problem[] } {
  const problems: Problem[] = [];
  const shardIds = new Set<string>();
  raw.shards.forEach((s, i) => {
    if (shardIds.has(s.id)) problems.push({ path: ['shards', i, 'id'], message: `duplicate shard id "${s.id}"` });
    shardIds.add(s.id);
  });
  const knownShard = (id: string, path: Problem['path']) => {
    if (!shardIds.has(id)) problems.push({ path, message: `unknown shard "${id}" (shards: ${[...shardIds].join(', ')})` });
  };

  const st = raw.strategy;
  if (st.kind === 'jump') {
    for (const [tenant, shard] of Object.entries(st.pins)) knownShard(shard, ['strategy', 'pins', tenant]);
  } else {
    knownShard(st.defaultShard, ['strategy', 'defaultShard']);
    if (st.shardResolution > st.indexResolution) {
      problems.push({ path: ['strategy', 'shardResolution'], message: `must not be finer than indexResolution (${st.indexResolution})` });
    }
    const seen = new Set<string>();
    st.mapping.forEach((m, i) => {
      knownShard(m.shard, ['strategy', 'mapping', i, 'shard']);
      const cell = m.cell.toLowerCase();
      if (seen.has(cell)) problems.push({ path: ['strategy', 'mapping', i, 'cell'], message: `cell ${cell} is mapped twice` });
      seen.add(cell);
      try {
        if (parentCell(cell, st.shardResolution) !== cell) {
          problems.push({ path: ['strategy', 'mapping', i, 'cell'], message: `cell ${cell} is not at the shard resolution ${st.shardResolution}` });
        }
      } catch (e) {
        problems.push({ path: ['strategy', 'mapping', i, 'cell'], message: (e as Error).message });
      }
    });
  }

  const tables: TableConfig[] = [];
  const listed = new Set<string>();
  raw.tables.forEach((t, i) => {
    const path = ['tables', i];
    const qualified = `${t.schema}.${t.name}`;
    if (listed.has(qualified)) problems.push({ path: [...path, 'name'], message: `table ${qualified} is listed twice` });
    if (t.routes) {
      const routes = tableRoutes(t, raw, path, problems);
      listed.add(qualified);
      if (routes) tables.push({ schema: t.schema, name: t.name, route: routes[0]!, routes, crossingKeys: [...new Set(t.crossingKeys)] });
      return;
    }
    const route = tableRoute(t, raw, path, listed, problems);
    listed.add(qualified);
    if (route?.kind === 'via' && raw.tables.find((o) => `${o.schema}.${o.name}` === route.parent)?.routes) {
      problems.push({ path: [...path, 'via'], message: `parent table ${route.parent} has several routes; a via child of it is not supported (give ${t.name} routes of its own)` });
    } else if (route) tables.push({ schema: t.schema, name: t.name, route, crossingKeys: [...new Set(t.crossingKeys)] });
    if (t.reference && t.crossingKeys.length) {
      problems.push({ path: [...path, 'crossingKeys'], message: 'a reference table is on every shard: its foreign keys cannot cross units' });
    }
  });

  if (problems.length > 0) return { problems };
  const config: Config = {
    file,
    source: raw.source,
    catalog: raw.catalog ?? raw.source,
    strategy:
      st.kind === 'jump'
        ? { kind: 'jump', key: st.key, pins: { ...st.pins } }
        : {
            kind: 'h3',
            indexResolution: st.indexResolution,
            shardResolution: st.shardResolution,
            defaultShard: st.defaultShard,
            mapping: st.mapping.map((m) => ({
              cell: m.cell.toLowerCase(),
              shard: m.shard,
              region: m.region,
              capacityStatus: m.capacity_status,
            })),
          },
    shards: raw.shards.map((s) => ({ id: s.id, primary: s.primary, replicas: s.replicas, capacityBytes: s.capacity })),
    tables,
    health: raw.health,
  };
  return { config: deepFreeze(config), problems };
}

type RawTable = RawConfig['tables'][number];

/**
 * `routes:` — two or more ways to a unit, each from the row's own columns (key; cell, with its
 * cellResolution). lat/lng routes are refused for now: their cells are computed outside SQL per
 * table (tables/cells.ts), one pair of columns per table.
 */
function tableRoutes(t: RawTable, raw: RawConfig, path: Problem['path'], problems: Problem[]): UnitRoute[] | undefined {
  const other = [t.reference && 'reference', t.via && 'via', t.key && 'key', (t.lat || t.lng) && 'lat/lng', t.cell && 'cell'].filter(Boolean);
  if (other.length) {
    problems.push({ path: [...path, 'routes'], message: `routes replace ${other.join(' and ')}: give each route its own key or cell` });
    return undefined;
  }
  const list = t.routes!;
  if (list.length < 2) {
    problems.push({ path: [...path, 'routes'], message: `needs two or more routes (got ${list.length}); a table with one route names it directly` });
    return undefined;
  }
  const st = raw.strategy;
  const out: UnitRoute[] = [];
  list.forEach((r, i) => {
    const at = [...path, 'routes', i];
    const ways = [r.key && 'key', (r.lat || r.lng) && 'lat/lng', r.cell && 'cell'].filter(Boolean);
    if (ways.length !== 1) {
      problems.push({ path: at, message: ways.length ? `choose one of key, lat/lng, cell (got ${ways.join(' and ')})` : 'needs key, lat/lng or cell' });
    } else if (st.kind === 'jump') {
      if (r.key) out.push({ kind: 'key', column: r.key });
      else problems.push({ path: at, message: 'the jump strategy routes by key; lat/lng and cell belong to the h3 strategy' });
    } else if (r.key) {
      problems.push({ path: [...at, 'key'], message: 'the h3 strategy routes by lat/lng or cell, not by a key column' });
    } else if (r.lat || r.lng) {
      problems.push({ path: at, message: 'lat/lng routes are not supported in a table with several routes; route each by an H3 index column (cell: a bigint of the point\'s index)' });
    } else {
      const resolution = r.cellResolution ?? st.indexResolution;
      if (resolution < st.shardResolution) problems.push({ path: [...at, 'cellResolution'], message: `must not be coarser than the shard resolution ${st.shardResolution}` });
      else out.push({ kind: 'cell', column: r.cell!, resolution });
    }
    if (r.cellResolution !== undefined && !r.cell) problems.push({ path: [...at, 'cellResolution'], message: 'belongs to a cell route' });
  });
  const columns = out.map((r) => ('column' in r ? r.column : ''));
  const twice = columns.find((c, i) => columns.indexOf(c) !== i);
  if (twice) problems.push({ path: [...path, 'routes'], message: `column ${twice} is routed twice` });
  return out.length === list.length && !twice ? out : undefined;
}

function tableRoute(
  t: RawTable,
  raw: RawConfig,
  path: Problem['path'],
  listed: Set<string>,
  problems: Problem[],
): TableRoute | undefined {
  const ways = [t.reference && 'reference', t.via && 'via', t.key && 'key', (t.lat || t.lng) && 'lat/lng', t.cell && 'cell'].filter(Boolean);
  if (ways.length > 1) {
    problems.push({ path, message: `choose one of reference, via, key, lat/lng, cell (got ${ways.join(' and ')})` });
    return undefined;
  }
  if (t.reference) return { kind: 'reference' };
  if (t.via) {
    const v = parseVia(t.via)!;
    const parent = `${v.parentSchema ?? t.schema}.${v.parent}`;
    if (!listed.has(parent)) {
      const known = raw.tables.some((o) => `${o.schema}.${o.name}` === parent);
      problems.push({
        path: [...path, 'via'],
        message: known ? `parent table ${parent} must be listed before ${t.name}` : `names unknown table ${parent}`,
      });
      return undefined;
    }
    const parentRaw = raw.tables.find((o) => `${o.schema}.${o.name}` === parent);
    if (parentRaw?.reference) {
      problems.push({ path: [...path, 'via'], message: `parent table ${parent} is a reference table; a child of it cannot be sharded by it` });
      return undefined;
    }
    return { kind: 'via', column: v.column, parent, parentColumn: v.parentColumn };
  }
  const st = raw.strategy;
  if (st.kind === 'jump') {
    if (t.lat || t.lng || t.cell) {
      problems.push({ path, message: 'lat/lng and cell belong to the h3 strategy; a jump table has a key column' });
      return undefined;
    }
    return { kind: 'key', column: t.key ?? st.key };
  }
  if (t.key) {
    problems.push({ path: [...path, 'key'], message: 'the h3 strategy routes by lat/lng or cell, not by a key column' });
    return undefined;
  }
  if (t.cell) {
    const resolution = t.cellResolution ?? st.indexResolution;
    if (resolution < st.shardResolution) {
      problems.push({ path: [...path, 'cellResolution'], message: `must not be coarser than the shard resolution ${st.shardResolution}` });
      return undefined;
    }
    return { kind: 'cell', column: t.cell, resolution };
  }
  if (t.lat && t.lng) return { kind: 'latlng', lat: t.lat, lng: t.lng };
  if (t.lat || t.lng) {
    problems.push({ path, message: 'lat and lng go together' });
    return undefined;
  }
  problems.push({ path, message: 'an h3 table needs lat and lng, cell, via or reference: true' });
  return undefined;
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}
