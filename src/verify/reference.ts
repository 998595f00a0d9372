import type { TableModel } from '../tables/model.js';
import type { ServerScan } from '../unit-copy/scan.js';
import type { Finding, Sums } from './types.js';

type RefFinding = Extract<Finding, { kind: 'reference' }>;

/**
 * Reference tables must be the same on every shard: equal to the source, or (without a source,
 * after cutover) equal to what most shards hold — the odd one out is the shard named. With a tie
 * the first shard in config order sets the expectation.
 */
export function compareReference(tables: readonly TableModel[], source: ServerScan | undefined, shards: readonly ServerScan[]): RefFinding[] {
  const out: RefFinding[] = [];
  for (const t of tables) {
    if (t.config.route.kind !== 'reference') continue;
    const held = shards.flatMap((s) => {
      const whole = s.tables.get(t.name)?.whole;
      return whole ? [{ shard: s.server, whole }] : [];
    });
    let expected: Sums | undefined;
    let expectedFrom: string;
    if (source) {
      expected = source.tables.get(t.name)?.whole;
      expectedFrom = 'source';
    } else {
      const groups = new Map<string, { sums: Sums; shards: string[] }>();
      for (const h of held) {
        const key = `${h.whole.rows}/${h.whole.checksum}`;
        (groups.get(key) ?? groups.set(key, { sums: h.whole, shards: [] }).get(key)!).shards.push(h.shard);
      }
      // Map order is first-seen order, i.e. config order: on a tie the earlier shard wins.
      const best = [...groups.values()].reduce<{ sums: Sums; shards: string[] } | undefined>((a, g) => (!a || g.shards.length > a.shards.length ? g : a), undefined);
      expected = best?.sums;
      expectedFrom = best ? best.shards.join(', ') : '';
    }
    if (!expected) continue;
    for (const h of held) {
      if (h.whole.rows !== expected.rows || h.whole.checksum !== expected.checksum) {
        out.push({ kind: 'reference', table: t.name, shard: h.shard, expectedFrom, expected, actual: h.whole });
      }
    }
  }
  return out;
}
