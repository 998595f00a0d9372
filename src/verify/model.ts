import type { Config } from '../config/types.js';
import { withClient } from '../db/connect.js';
import { isUserError, usageError } from '../errors.js';
import { shardEndpoint } from '../db/endpoints.js';
import { introspect, type TableInfo } from '../tables/introspect.js';
import { loadModel, type Model } from '../tables/model.js';
import { definitionKey, majority } from './drift.js';

const APP = { applicationName: 'shardctl verify' };

/**
 * Without the source (after cutover) the tables' definitions come from a shard: the reachable one
 * that agrees with the majority of shards on the most tables, so one drifted shard can neither set
 * the columns compared everywhere nor be the yardstick drift is measured with.
 */
export async function modelFromShards(config: Config): Promise<Model> {
  const names = config.tables.map((t) => `${t.schema}.${t.name}`);
  const seen = await Promise.all(
    config.shards.map(async (s) => {
      try {
        return { id: s.id, infos: await withClient(shardEndpoint(config, s.id), (c) => introspect(c, names), APP) };
      } catch (e) {
        if (!isUserError(e)) throw e;
        return { id: s.id, error: e };
      }
    }),
  );
  const up = seen.filter((s) => s.infos);
  if (!up.length) throw seen[0]?.error ?? usageError('the config has no shards');
  const agreed = new Map(names.map((n) => [n, majority(up.map((s) => s.infos!.get(n)))]));
  const score = (infos: Map<string, TableInfo>) =>
    names.filter((n) => {
      const [mine, most] = [infos.get(n), agreed.get(n)];
      return mine && most && definitionKey(mine) === definitionKey(most);
    }).length;
  const best = up.reduce((a, s) => (score(s.infos!) > score(a.infos!) ? s : a));
  return withClient(shardEndpoint(config, best.id), (c) => loadModel(config, c, `shard ${best.id}`), APP);
}

