import type { TableModel } from '../tables/model.js';
import type { Homes } from './homes.js';
import type { ServerScan } from '../unit-copy/scan.js';
import { byUnit } from './units.js';
import type { Finding } from './types.js';

type Misplaced = Extract<Finding, { kind: 'misplaced' }>;
type Duplicated = Extract<Finding, { kind: 'duplicated' }>;
type Orphans = Extract<Finding, { kind: 'orphans' }>;

/**
 * Where rows are against where their units live, from the per-unit sums each shard already
 * returned (no further query): rows on a shard their unit does not live on (misplaced, per table
 * and shard), units with rows on more than one shard (duplicated), and rows that belong to no unit
 * at all (orphans, on the shards and on the source).
 */
export function checkPlacement(
  tables: readonly TableModel[],
  scans: readonly ServerScan[],
  homes: Homes,
): (Misplaced | Duplicated | Orphans)[] {
  const misplaced: Misplaced[] = [];
  const orphans: Orphans[] = [];
  // unit → shard → rows and tables there
  const presence = new Map<string, Map<string, { rows: number; tables: string[] }>>();
  for (const scan of scans) {
    for (const t of tables) {
      const ts = scan.tables.get(t.name);
      if (!ts) continue;
      if (ts.orphans > 0) orphans.push({ kind: 'orphans', table: t.name, shard: scan.server, rows: ts.orphans });
      if (scan.server === 'source' || t.config.route.kind === 'reference') continue;
      const here: Misplaced = { kind: 'misplaced', table: t.name, shard: scan.server, rows: 0, units: [] };
      for (const [unit, sums] of ts.units) {
        const at = presence.get(unit) ?? presence.set(unit, new Map()).get(unit)!;
        const p = at.get(scan.server) ?? at.set(scan.server, { rows: 0, tables: [] }).get(scan.server)!;
        p.rows += sums.rows;
        p.tables.push(t.name);
        const home = homes.home(unit);
        if (home !== scan.server) {
          here.rows += sums.rows;
          here.units.push({ unit, rows: sums.rows, home, ...(homes.placed(unit) ? {} : { unplaced: true as const }) });
        }
      }
      if (here.units.length) {
        here.units.sort((a, b) => byUnit(a.unit, b.unit));
        misplaced.push(here);
      }
    }
  }
  const duplicated: Duplicated[] = [];
  for (const [unit, at] of [...presence].sort(([a], [b]) => byUnit(a, b))) {
    if (at.size < 2) continue;
    const home = homes.home(unit);
    const shards = [...at].map(([shard, p]) => ({ shard, ...p })).sort((a, b) => (a.shard === home ? -1 : b.shard === home ? 1 : 0));
    duplicated.push({ kind: 'duplicated', unit, home, shards, ...(homes.placed(unit) ? {} : { unplaced: true as const }) });
  }
  return [...misplaced, ...duplicated, ...orphans];
}
