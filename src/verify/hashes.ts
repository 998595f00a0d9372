import { withClient, type Endpoint } from '../db/connect.js';
import { serverTypes } from '../tables/copy-format.js';
import type { TableModel } from '../tables/model.js';
import { rowHashFor, type RowHash } from '../tables/row-hash.js';

/**
 * The row hash of each table for one verify, decided over every server at once (tables/row-hash.ts):
 * a checksum is only comparable when all sides hash the same bytes the same way. A server that cannot be asked makes every table
 * portable (its scan then reports it unreachable).
 */
export async function rowHashes(servers: readonly (readonly [string, Endpoint])[], tables: readonly TableModel[]): Promise<Map<string, RowHash>> {
  const names = tables.map((t) => t.name);
  const types = await Promise.all(servers.map(([, ep]) => withClient(ep, (c) => serverTypes(c, names), { applicationName: 'shardctl verify' }).catch(() => undefined)));
  const [first, ...others] = types;
  if (!first || others.some((t) => !t)) return new Map();
  return new Map(tables.map((t) => [t.name, rowHashFor(t, first, others as NonNullable<(typeof others)[number]>[])]));
}
