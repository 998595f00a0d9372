import type { TableModel } from '../tables/model.js';
import type { ServerScan } from '../unit-copy/scan.js';
import type { Homes } from './homes.js';
import type { Finding } from './types.js';

type Copies = Extract<Finding, { kind: 'copies' }>;

/**
 * Tables with several routes, row by row: every cross-shard row must be on exactly the shards its
 * units live on (each once — the per-unit sums see a second copy on one shard), and every copy
 * identical to the source's row (without the source, after cutover: to the other copies).
 * Shards that could not be read, or whose table drifted, are left to the errors and drift findings.
 */
export function compareCopies(tables: readonly TableModel[], source: ServerScan | undefined, shards: ReadonlyMap<string, ServerScan>, homes: Homes): Copies[] {
  const out: Copies[] = [];
  for (const t of tables.filter((x) => x.config.routes)) {
    const readable = [...shards.values()].filter((s) => !s.error && s.tables.get(t.name)?.cross);
    const want = source && !source.error ? source.tables.get(t.name)?.cross : undefined;
    const keys = new Set<string>([...(want?.keys() ?? []), ...readable.flatMap((s) => [...s.tables.get(t.name)!.cross!.keys()])]);
    for (const key of [...keys].sort()) {
      const held = readable.map((s) => ({ shard: s.server, row: s.tables.get(t.name)!.cross!.get(key) }));
      const truth = want ? want.get(key) : held.find((h) => h.row)?.row;
      const units = truth?.units ?? held.find((h) => h.row)!.row!.units;
      const expected = [...new Set(units.map((u) => homes.home(u)))].sort();
      const problems: Copies['shards'] = [];
      for (const h of held) {
        const due = truth !== undefined && expected.includes(h.shard);
        if (due && !h.row) problems.push({ shard: h.shard, state: 'missing' });
        else if (h.row && !due) problems.push({ shard: h.shard, state: 'unexpected' });
        else if (h.row && want && h.row.hash !== truth!.hash) problems.push({ shard: h.shard, state: 'differs' });
        // without the source no copy is the reference: when they disagree, each is named
        else if (h.row && !want && held.some((o) => o.row && o.row.hash !== h.row!.hash)) problems.push({ shard: h.shard, state: 'differs' });
      }
      if (problems.length) out.push({ kind: 'copies', table: t.name, key, units: [...new Set(units)], expected, shards: problems });
    }
  }
  return out;
}

/** Per table with several routes: its rows on the source (each once) and how many of them cross shards. */
export function crossShardCounts(tables: readonly TableModel[], source: ServerScan | undefined): { table: string; rows: number; crossShard: number }[] {
  if (!source || source.error) return [];
  return tables.flatMap((t) => {
    const ts = source.tables.get(t.name);
    return t.config.routes && ts?.cross ? [{ table: t.name, rows: ts.distinct ?? 0, crossShard: ts.cross.size }] : [];
  });
}
