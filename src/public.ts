/**
 * shardctl as a library (the package's main entry, `import … from 'shardctl'`): the routing functions
 * the CLI uses to place data (so an application routes exactly as the tool did), config loading, and
 * the engine behind every command. Only the public API: what the CLI needs besides is in index.ts.
 * An application that only routes imports `shardctl/router` instead (no driver, no credentials).
 */
export { tenantKey64, tenantText } from './routing/tenant-key.js';
export { jumpHash } from './routing/jump.js';
export { shardCell, descendantRange } from './cells/h3.js';
export { type Router } from './routing/router.js';
export { createRouter, type LiveRouter, type CatalogRouterOptions } from './live-routing/live-router.js';
export { readTopology, type CatalogTopology } from './catalog/read-topology.js';
export { loadConfig, parseConfig } from './config/load.js';
export type * from './config/types.js';
export { UserError, ExitCode, isUserError } from './errors.js';

export { redactUrl } from './redact.js';
export { plan, type PlanResult, type PlanOptions } from './plan/index.js';
export type { KeyAnalysis, KeyVerdict } from './foreign-keys/key-verdicts.js';
export { verify, junitXml, formatReport } from './verify/index.js';
export type { VerifyOptions, VerifyResult, VerifyEvent, Finding, TableCheck } from './verify/index.js';
export { rebalance, type RebalanceOptions, type RebalanceResult, type RebalanceEvent } from './rebalance/index.js';
export type { MovePoint, MovePointHook } from './rebalance/journal.js';
export { addShard, type AddShardOptions, type AddShardResult } from './add-shard/index.js';
export { crossShard, type CrossShardTx, type CrossShardOptions, type CrossShardResult } from './two-phase/commit.js';
export { resolve, type ResolveResult, type ResolvedTransaction } from './two-phase/resolve.js';
export { migrate, type MigrateOptions, type MigrateResult } from './migrate/index.js';
export type { MigrateEvent } from './migrate/events.js';
export { follow, type FollowOptions, type FollowResult } from './online/follow.js';
export { cutover, type CutoverOptions, type CutoverResult, type CutoverEvent } from './online/cutover.js';
export { abandon, type AbandonResult } from './online/abandon.js';
export { followBack, type FollowBackOptions, type FollowBackResult, type FollowBackEvent } from './rollback/follow-back.js';
export { rollback, type RollbackOptions, type RollbackResult, type RollbackEvent } from './rollback/rollback.js';
export { finishCutover, type FinishResult } from './rollback/finish.js';
export type { FollowEvent } from './stream/events.js';
export { health, prometheusText, writeTextfile, resolveThresholds, METRIC_HELP, COUNTER_HELP, STATUS_CODE as HEALTH_STATUS_CODES } from './health/index.js';
export type {
  HealthReport, HealthOptions, HealthThresholds, ThresholdOverrides, ServerReport, CatalogReport, LagReport,
  CheckResult as HealthCheck, Problem as HealthProblem, Status as HealthStatus,
} from './health/index.js';
export { failover, type FailoverOptions, type FailoverResult } from './failover/index.js';
export { removeShard, type RemoveShardOptions, type RemoveShardResult } from './remove-shard/index.js';
export { throttleOn, throttleOff } from './throttle/on-demand.js';
