import assert from 'node:assert/strict';
import { stageFleet, type Stage, type StageOptions } from '../../harness/demo/stage.js';
import { migrate } from '../../src/migrate/index.js';

/**
 * The fleet most tests start from: staged (a loaded monolith, empty shards, a config file) and
 * migrated, the migration proven ok. A failed migration stops the fleet before failing, so a
 * before() hook that calls this leaves no server behind.
 */
export async function stageMigrated(opts: StageOptions): Promise<Stage> {
  const stage = await stageFleet(opts);
  try {
    const r = await migrate(stage.config);
    assert.equal(r.ok, true, `migrate: ${JSON.stringify([...r.errors, ...r.failures].slice(0, 3))}`);
    return stage;
  } catch (e) {
    await stage.stop();
    throw e;
  }
}
