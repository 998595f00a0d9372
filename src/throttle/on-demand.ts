import { withCatalogSession } from '../catalog/run.js';
import { clearThrottleFlag, setThrottleFlag, type ThrottleFlag } from '../catalog/throttle.js';
import type { Config } from '../config/types.js';

/**
 * `shardctl throttle on [--for 10m]`: every copy and apply that reads the catalog pauses at its next
 * batch until `throttle off` or the expiry. Returns the flag as recorded (who set it, until when).
 */
export function throttleOn(config: Config, forMs?: number): Promise<ThrottleFlag> {
  return withCatalogSession(config.catalog, (c) => setThrottleFlag(c, forMs), 'shardctl throttle');
}

/** `shardctl throttle off`: the paused work resumes at its next check. Returns whether a flag was in force. */
export function throttleOff(config: Config): Promise<boolean> {
  return withCatalogSession(config.catalog, clearThrottleFlag);
}
