import { readThrottleFlag } from '../catalog/throttle.js';
import type { Config } from '../config/types.js';
import { timedSession } from './session.js';
import { sourceLoad } from '../throttle/source-load.js';
import type { HealthThresholds, ServerReport, ThrottledReport } from './types.js';

/**
 * Whether copies and applies would pause now, per reason (src/throttle/): someone's
 * `shardctl throttle on` in the catalog, a shard replica lagging past the lag warnings, or the
 * monolith's sessions in a query past the connections warning (the throttle's default bounds). Exported as the `shardctl_throttled{reason}` gauge.
 */
export async function readThrottled(config: Config, servers: readonly ServerReport[], t: HealthThresholds, timeoutMs: number): Promise<ThrottledReport[]> {
  const flag = await timedSession({ label: 'catalog', url: config.catalog }, timeoutMs, readThrottleFlag);
  const lagging = servers.some((s) => s.role === 'replica' && s.lag && ((s.lag.bytes ?? 0) > t.lagBytes.warning || (s.lag.seconds ?? 0) > t.lagSeconds.warning));
  const load = await timedSession({ label: 'source', url: config.source }, timeoutMs, sourceLoad);
  return [
    { reason: 'on-demand', active: flag.ok && flag.value !== undefined },
    { reason: 'replica-lag', active: lagging },
    // the throttle's default bound: the monolith's sessions in a query against health's connections warning
    { reason: 'source-load', active: load.ok && load.value.active / load.value.maxConnections > t.connections.warning },
  ];
}
