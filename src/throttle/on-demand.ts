import { clearThrottleFlag, setThrottleFlag, type ThrottleFlag } from '../catalog/throttle.js';
import type { Config } from '../config/types.js';
import { withClient } from '../db/connect.js';

/**
 * `shardctl throttle on [--for 10m]`: every copy and apply that reads the catalog pauses at its next
 * batch until `throttle off` or the expiry. Returns the flag as recorded (who set it, until when).
 */
export function throttleOn(config: Config, forMs?: number): Promise<ThrottleFlag> {
  return withClient({ label: 'catalog', url: config.catalog }, (c) => setThrottleFlag(c, forMs), { applicationName: 'shardctl throttle' });
}

/** `shardctl throttle off`: the paused work resumes at its next check. Returns whether a flag was in force. */
export function throttleOff(config: Config): Promise<boolean> {
  return withClient({ label: 'catalog', url: config.catalog }, clearThrottleFlag);
}
