import type { TableModel } from '../tables/model.js';
import { locate } from './report.js';
import type { ServerScan } from '../unit-copy/scan.js';
import type { Finding, TableCheck } from './types.js';

/** One check per table and shard: what was found there and whether any finding points at it. */
export function checksOf(tables: readonly TableModel[], shards: readonly ServerScan[], findings: readonly Finding[]): TableCheck[] {
  const bad = new Set(findings.flatMap((f) => locate(f).map((l) => `${l.shard}\u0000${l.table}`)));
  return shards.flatMap((s) =>
    tables.map((t) => {
      const ts = s.tables.get(t.name);
      const units = [...(ts?.units.values() ?? [])];
      return {
        table: t.name,
        shard: s.server,
        kind: t.config.route.kind === 'reference' ? 'reference' : 'sharded',
        units: units.length,
        rows: ts?.whole?.rows ?? units.reduce((a, x) => a + x.rows, ts?.orphans ?? 0),
        compared: Boolean(ts),
        ok: Boolean(ts) && !s.error && !bad.has(`${s.server}\u0000${t.name}`),
        seconds: ts?.seconds ?? 0,
      } satisfies TableCheck;
    }),
  );
}
