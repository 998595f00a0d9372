/**
 * The engine's one door for the CLI (`commands/` imports src/ through this file only): the public
 * library (public.ts, the package's entry) and what the commands need besides it.
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
export { editConfigFile, previewConfigEdit, setPin, removePin, setMapping } from './config/edit-file.js';
export { applyReadOnly, type ReadOnlyResult } from './rebalance/read-only.js';
export { restrictedCells, type CapacityStatus, type CellStatus } from './config/capacity.js';
export { worst as worstHealthStatus } from './health/status.js';
