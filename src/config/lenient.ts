import { checkConfig, type Problem } from './check.js';
import type { RawConfig } from './schema.js';

/**
 * When the document's shape is wrong somewhere, the cross-key checks (duplicate ids, unknown shards,
 * table order) still run on a best-effort reading of it, so one pass reports every problem. Only
 * shards with a string id and tables with a string name take part; anything else was already
 * reported by the schema.
 */
export function lenientCrossChecks(data: unknown, file: string): Problem[] {
  const d = data as Record<string, any>;
  if (!Array.isArray(d.shards) || !Array.isArray(d.tables)) return [];
  if (!d.shards.every((s: any) => typeof s?.id === 'string') || !d.tables.every((t: any) => typeof t?.name === 'string')) return [];
  const str = (v: unknown, dflt: string) => (typeof v === 'string' ? v : dflt);
  const s = d.strategy ?? {};
  const strategy =
    s.kind === 'h3'
      ? {
          kind: 'h3' as const,
          indexResolution: Number.isInteger(s.indexResolution) ? s.indexResolution : 12,
          shardResolution: Number.isInteger(s.shardResolution) ? s.shardResolution : 3,
          defaultShard: str(s.defaultShard, d.shards[0]?.id ?? ''),
          mapping: Array.isArray(s.mapping) ? s.mapping.filter((m: any) => typeof m?.cell === 'string' && typeof m?.shard === 'string') : [],
        }
      : { kind: 'jump' as const, key: str(s.key, 'key'), pins: s.pins && typeof s.pins === 'object' ? s.pins : {} };
  const sane = {
    source: '',
    strategy,
    shards: d.shards.map((x: any) => ({ id: x.id, primary: '', replicas: [] })),
    tables: d.tables.map((t: any) => ({
      name: t.name,
      schema: str(t.schema, 'public'),
      reference: t.reference === true,
      key: typeof t.key === 'string' ? t.key : undefined,
      via: typeof t.via === 'string' ? t.via : undefined,
      lat: typeof t.lat === 'string' ? t.lat : undefined,
      lng: typeof t.lng === 'string' ? t.lng : undefined,
      cell: typeof t.cell === 'string' ? t.cell : undefined,
    })),
    health: {},
  } as unknown as RawConfig;
  try {
    return checkConfig(sane, file).problems;
  } catch {
    return []; // a shape the schema rejected in a way these checks cannot read: its error stands
  }
}
