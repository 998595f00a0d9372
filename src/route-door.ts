/**
 * What `shardctl route` (and every command's config loading) needs, without the orchestrators behind
 * index.ts: a DBA's `route 42` loads the config, the route lookups and the catalog's topology reader
 * only. commands/ imports it with `await import()` like index.ts (test/unit/cli-startup.test.ts);
 * index.ts exports the same names.
 */
export { loadConfig } from './config/load.js';
export { routeKeys, routeLocation, type KeyRoute, type LocationRoute, type RoutingTopology } from './routing/lookup.js';
export { routeSource, type RouteSource } from './live-routing/route-source.js';
