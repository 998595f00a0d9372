import type { Config } from '../config/types.js';
import { freshSessions, type Sessions } from '../db/sessions.js';
import { shardEndpoint } from '../db/endpoints.js';
import { failureText } from '../db/pg-error.js';
import type { Model } from '../tables/model.js';
import { installGuard } from '../fence/unit-guard.js';
import type { MigrateResult } from './types.js';

/**
 * Every shard migrate wrote to gets the write fence's guard (fence/unit-guard.ts) before any
 * application writes there: a REPEATABLE READ or SERIALIZABLE transaction whose snapshot predates
 * the guard could otherwise write through a shard's first fence. Installed after the copy, so the
 * copy does not fire its triggers. A shard that fails is an error of the run (it is not exact to
 * report a shard ready whose first move could lose writes); one already unreachable is not retried.
 */
export async function installGuards(config: Config, model: Model, result: MigrateResult, sessions: Sessions = freshSessions): Promise<void> {
  const unreachable = new Set(result.errors.filter((e) => e.unreachable).map((e) => e.shard));
  await Promise.all(
    config.shards
      .filter((s) => !unreachable.has(s.id))
      .map(async (s) => {
        const e = shardEndpoint(config, s.id);
        try {
          await sessions.use(e, (c) => installGuard(c, e, model));
        } catch (err) {
          result.errors.push({ shard: s.id, units: [], error: failureText(err, `shard ${s.id}, installing the write fence`), unreachable: false });
        }
      }),
  );
}
