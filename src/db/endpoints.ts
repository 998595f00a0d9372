import type { Config } from '../config/types.js';
import type { Endpoint } from './connect.js';

/** The source and each shard primary as endpoints, labelled for messages. */
export function sourceEndpoint(config: Config): Endpoint {
  return { label: 'source', url: config.source };
}

export function shardEndpoint(config: Config, shard: string): Endpoint {
  const s = config.shards.find((x) => x.id === shard);
  if (!s) throw new Error(`internal: unknown shard ${shard}`);
  return { label: `shard ${shard}`, url: s.primary };
}
