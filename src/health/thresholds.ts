import type { HealthConfig } from '../config/types.js';
import type { HealthThresholds, ThresholdOverrides } from './types.js';

/**
 * Precedence: flags (overrides) > config file > defaults. The defaults are already in the config
 * (schema.ts fills them in), so only the levels a flag names are replaced, one at a time.
 *
 * @example resolveThresholds(config.health, { lagSeconds: { warning: 5 } })
 */
export function resolveThresholds(config: HealthConfig, overrides: ThresholdOverrides = {}): HealthThresholds {
  const pick = <K extends keyof HealthThresholds>(k: K) => ({ ...config[k], ...defined(overrides[k]) });
  return {
    latencyMs: pick('latencyMs'),
    lagSeconds: pick('lagSeconds'),
    lagBytes: pick('lagBytes'),
    slotRetainedBytes: pick('slotRetainedBytes'),
    connections: pick('connections'),
    capacity: pick('capacity'),
    preparedSeconds: pick('preparedSeconds'),
  };
}

function defined<T extends object>(o: T | undefined): Partial<T> {
  return Object.fromEntries(Object.entries(o ?? {}).filter(([, v]) => v !== undefined)) as Partial<T>;
}
