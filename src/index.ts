/**
 * The engine's one door for the CLI (`commands/` imports src/ through this file only): the public
 * library (public.ts, the package's entry) and what the commands need besides it. bench/ and
 * harness/ come in through here (or public.ts, routing/entry.ts) too: test/layers.test.ts checks both.
 */
export * from './public.js';

// what the commands need besides the public API
export { routeKeys, routeLocation, type KeyRoute, type LocationRoute, type RoutingTopology } from './routing/lookup.js';
export { routeSource, type RouteSource } from './live-routing/route-source.js';
export { type HeldRoute } from './catalog/held-routes.js';
export { largestUnit, placedShard, placementsPerShard, runSummaries } from './catalog/summaries.js';
export { parseDuration, parseSize, parseRatio, type Duration } from './config/units.js';
export { createThrottle, type ThrottleEvent, type ThrottleOptions, type ThrottleReason } from './throttle/throttle.js';
export { usageError } from './errors.js';
export { redactText } from './redact.js';
export { withClient } from './db/connect.js';
export { pgFailure } from './db/pg-error.js';
export { allEdits, editConfigFile, previewConfigEdit, setPin, removePin, setMapping } from './config/edit-file.js';
export { applyReadOnly, type ReadOnlyResult } from './rebalance/read-only.js';
export { restrictedCells, type CapacityStatus, type CellStatus } from './config/capacity.js';
export { worst as worstHealthStatus } from './health/status.js';

// what bench/ and harness/ need besides (they reach the engine through this file or public.ts only):
// connections and identifiers for their own SQL, and the engine parts the bench measures against alternatives
export { connect, destroy, type Endpoint } from './db/connect.js';
export { shardEndpoint, sourceEndpoint } from './db/endpoints.js';
export { quoteIdent, quoteTable } from './db/ident.js';
export { startupOptions } from './db/session.js';
export { copyLinesInto } from './copy/pipe.js';
export { loadModel, type Model, type TableModel } from './tables/model.js';
export { deleteSql, qualifiedName, scopeOf, selectSql } from './tables/scope.js';
export { rootTables, takeInventory } from './unit-copy/inventory.js';
export { mayBypassTriggers } from './foreign-keys/after-copy-check.js';
