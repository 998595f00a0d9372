/**
 * shardctl as a library: the routing functions the CLI uses to place data (so an application
 * routes exactly as the tool did), config loading, and the engine behind every command.
 */
export { tenantKey64, tenantText } from './routing/tenant-key.js';
export { jumpHash } from './routing/jump.js';
export { shardCell, descendantRange } from './routing/h3.js';
export { createRouter, type Router } from './routing/router.js';
export { loadConfig, parseConfig } from './config/load.js';
export type * from './config/types.js';
export { UserError, ExitCode, isUserError } from './errors.js';
export { redactUrl } from './redact.js';
