import type { Config } from '../config/types.js';
import type { Endpoint } from '../db/connect.js';
import { freshSessions, type Sessions } from '../db/sessions.js';
import { shardEndpoint } from '../db/endpoints.js';
import { copyFormat, serverTypes, type CopyFormat } from '../tables/copy-format.js';
import { rowHashFor, type RowHash } from '../tables/row-hash.js';
import type { TableModel } from '../tables/model.js';

/** How one table travels to one shard: the COPY format, and how its checksums hash each row. */
export interface ShardFormat {
  readonly copy: CopyFormat;
  readonly hash: RowHash;
}

/**
 * The COPY format and row hash of every table for every shard, read once per run: binary where the
 * source and that shard have identical built-in column types (tables/copy-format.ts), else text;
 * the row hash as row-hash.ts proves it for the pair (whatever the COPY format). `text: true`
 * (MigrateOptions.copyFormat 'text') keeps every table's COPY in text.
 */
export async function copyFormats(config: Config, source: Endpoint, tables: readonly TableModel[], text = false, sessions: Sessions = freshSessions): Promise<Map<string, Map<string, ShardFormat>>> {
  const out = new Map<string, Map<string, ShardFormat>>();
  if (!tables.length) return out;
  const names = tables.map((t) => t.name);
  const [src, ...shards] = await Promise.all([
    sessions.use(source, (c) => serverTypes(c, names)),
    ...config.shards.map((s) => sessions.use(shardEndpoint(config, s.id), (c) => serverTypes(c, names))),
  ]);
  config.shards.forEach((s, i) =>
    out.set(s.id, new Map(tables.map((t) => {
      const copy = text ? 'text' : copyFormat(t, src!, shards[i]!);
      return [t.name, { copy, hash: rowHashFor(t, src!, [shards[i]!]) }];
    }))),
  );
  return out;
}
