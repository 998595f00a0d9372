import type { Config } from '../config/types.js';
import { withRun } from '../catalog/run.js';
import { readTopology, type CatalogTopology } from '../catalog/read-topology.js';
import { failureText } from '../db/pg-error.js';

/** The topology `shardctl route` answers with, and why when it is not the catalog's. */
export type RouteSource = { kind: 'catalog'; topology: CatalogTopology } | { kind: 'config'; why: string };

/**
 * The catalog's live topology (the one `createRouter({ catalog })` and the SQL functions route with,
 * held routes included), read in one snapshot without creating or locking anything; the config file's
 * when the catalog cannot be read or holds no topology yet, with the reason. A config file does not
 * know which moves have flipped: the caller says so.
 */
export async function routeSource(config: Config): Promise<RouteSource> {
  try {
    const topology = await withRun(config.catalog, { command: 'route', lock: 'none', create: false }, ({ catalog }) => readTopology(catalog.client));
    return { kind: 'catalog', topology };
  } catch (e) {
    return { kind: 'config', why: failureText(e, 'catalog') };
  }
}
