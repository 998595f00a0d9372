import type { Config } from '../config/types.js';
import { rollbackWith, type RollbackOptions, type RollbackResult } from '../rollback/rollback.js';
import { checkChangedBack } from './changed-back.js';

/**
 * `rollback` (rollback/rollback.ts) with its proof inside the fence: the rows changed during the
 * window, compared by this layer's comparer (changed-back.ts; the rollback layer sits below it).
 */
export function rollback(config: Config, opts: RollbackOptions = {}): Promise<RollbackResult> {
  return rollbackWith(config, opts, checkChangedBack);
}
