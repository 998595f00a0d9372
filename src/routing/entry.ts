/**
 * `shardctl/router`: routing only, for application code. It loads no database driver and no YAML
 * parser, reads no environment variable and needs no credential: the topology is the strategy and
 * the shard ids, nothing more. It is the very function the tool places data with, so the application
 * and the tool cannot disagree.
 *
 * @example
 *   import { createRouter } from 'shardctl/router';
 *   const router = createRouter({ strategy: { kind: 'jump' }, shards: ['s0', 's1', 's2'] });
 *   router.shardFor(42); // 's1'
 *   const fromFile = await loadRouter('shardctl.yaml'); // the same file the tool uses, read for routing only
 */
import type { Config, Strategy } from '../config/types.js';
import { topologyRouter, type Router } from './router.js';

export { tenantKey64, tenantText } from './tenant-key.js';
export { jumpHash } from './jump.js';
export { shardCell } from '../cells/h3.js';
export type { Router } from './router.js';

/** What routing needs: the strategy and the shard ids in config order (URLs, if given, are ignored). */
export interface RoutingTopology {
  readonly strategy:
    | { readonly kind: 'jump'; readonly pins?: Readonly<Record<string, string>> }
    | {
        readonly kind: 'h3';
        readonly defaultShard: string;
        readonly mapping?: readonly { readonly cell: string; readonly shard: string }[];
        readonly indexResolution?: number;
        readonly shardResolution?: number;
      };
  readonly shards: readonly (string | { readonly id: string })[];
}

/** A router over a plain topology (a literal, JSON, or a config file's strategy and shards). Throws a TypeError naming what is wrong. */
export function createRouter(topology: RoutingTopology): Router {
  const shards = (topology?.shards ?? []).map((s) => (typeof s === 'string' ? s : s?.id));
  if (shards.length === 0 || shards.some((s) => typeof s !== 'string' || s === '')) throw new TypeError('shards: a list of shard ids (strings) is needed');
  if (new Set(shards).size !== shards.length) throw new TypeError(`shards: duplicate shard id in ${shards.join(', ')}`);
  const known = (where: string, id: unknown) => {
    if (typeof id !== 'string' || !shards.includes(id)) throw new TypeError(`${where}: unknown shard ${String(id)} (shards: ${shards.join(', ')})`);
    return id;
  };
  const st = topology.strategy;
  let strategy: Strategy;
  if (st?.kind === 'jump') {
    const pins = Object.fromEntries(Object.entries(st.pins ?? {}).map(([t, s]) => [t, known(`strategy.pins.${t}`, s)]));
    strategy = { kind: 'jump', key: '', pins };
  } else if (st?.kind === 'h3') {
    const mapping = (st.mapping ?? []).map((m, i) => ({ cell: String(m.cell).toLowerCase(), shard: known(`strategy.mapping[${i}].shard`, m.shard) }));
    strategy = {
      kind: 'h3',
      defaultShard: known('strategy.defaultShard', st.defaultShard),
      mapping,
      indexResolution: st.indexResolution ?? 12,
      shardResolution: st.shardResolution ?? 3,
    } as Strategy;
  } else {
    throw new TypeError(`strategy.kind must be jump or h3, got ${String((st as { kind?: unknown })?.kind)}`);
  }
  return topologyRouter({ strategy, shards: shards.map((id) => ({ id })) as unknown as Config['shards'] });
}

/**
 * A router from a shardctl.yaml, read for routing only: `${VAR}` references are left alone (no
 * password variable is needed) and only the strategy and shard ids are read. The YAML parser is
 * loaded on this call, not on import.
 */
export async function loadRouter(file: string): Promise<Router> {
  const [{ readFile }, { parse }] = await Promise.all([import('node:fs/promises'), import('yaml')]);
  const doc = parse(await readFile(file, 'utf8')) as Partial<RoutingTopology> | null;
  try {
    return createRouter({ strategy: doc?.strategy as RoutingTopology['strategy'], shards: doc?.shards ?? [] });
  } catch (e) {
    throw new TypeError(`${file}: ${(e as Error).message}`);
  }
}
