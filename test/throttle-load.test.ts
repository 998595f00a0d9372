import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { stageFleet, type Stage } from '../harness/demo/stage.js';
import { runCliAsync, watchCli } from './helpers/cli.js';
import { assertExact } from './helpers/exact.js';
import { sql } from './helpers/fleet.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The monolith's load is a throttle signal too: while more of its max_connections run queries at once
 * than --throttle-load allows (shardctl's own sessions not counted), the copy pauses before its next
 * batch ('throttled: the monolith …'), and it goes on once the load is gone. The load is the test's own
 * sessions sleeping in queries; the end state is checked with the test's own SQL (assertExact).
 */
describe('throttle: the copy pauses while the monolith is loaded', { timeout: 300_000 }, () => {
  let stage: Stage;
  before(async () => {
    stage = await stageFleet({ kind: 'pos', shards: 2, scale: 0.01 });
  });
  after(() => stage?.stop());

  it('sessions busy on the monolith past --throttle-load pause the copy; when they end, it resumes and finishes', async () => {
    const max = Number((await sql(stage.config.source, `SELECT current_setting('max_connections') AS m`))[0].m);
    const busy = await Promise.all([1, 2, 3, 4].map(async () => {
      const c = new pg.Client({ connectionString: stage.config.source });
      await c.connect();
      return { c, running: c.query('SELECT pg_sleep(600)').catch(() => undefined) };
    }));
    const bound = 2 / max; // two sessions at once are allowed, four are running
    const seen = { batches: 0, throttled: [] as { reason: string; detail: string }[], resumed: 0 };
    let released = false;
    const release = async () => {
      if (released) return;
      released = true;
      await sql(stage.config.source, `SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(600)'`);
      await Promise.all(busy.map(async (b) => (await b.running, await b.c.end())));
    };
    try {
      const exit = watchCli(['migrate', '--json', '--concurrency', '1', '--batch-rows', '20', '--throttle-load', String(bound), '--config', stage.configPath], (e) => {
        if (e.type === 'batch') seen.batches++;
        if (e.type === 'throttled') seen.throttled.push(e as unknown as { reason: string; detail: string });
        if (e.type === 'throttle-resumed') seen.resumed++;
      });
      for (let i = 0; i < 600 && !seen.throttled.length; i++) await sleep(100);
      assert.equal(seen.throttled[0]?.reason, 'source-load', JSON.stringify(seen));
      assert.match(seen.throttled[0]!.detail, /^the monolith runs [4-9]\d* queries at once \([\d.]+% of max_connections \d+; bound [\d.]+%\)$/);
      await sleep(3000);
      assert.equal(seen.batches, 0, 'no batch while the monolith is loaded');
      await release();
      const r = await exit;
      assert.equal(r.status, 0, r.stderr.slice(-2000));
      assert.ok(seen.batches > 0 && seen.resumed === 1, JSON.stringify(seen));
    } finally {
      await release();
    }
    await assertExact(stage.config);
  });

  it('--throttle-load takes a ratio (exit 2 otherwise), and SHARDCTL_THROTTLE_LOAD is its twin', async () => {
    const bad = await runCliAsync(['migrate', '--dry-run', '--throttle-load', 'lots', '--config', stage.configPath]);
    assert.equal(bad.status, 2, bad.stderr);
    assert.match(bad.stderr, /--throttle-load/);
    const env = await runCliAsync(['migrate', '--dry-run', '--config', stage.configPath], { SHARDCTL_THROTTLE_LOAD: 'lots' });
    assert.equal(env.status, 2, env.stderr);
    assert.match(env.stderr, /SHARDCTL_THROTTLE_LOAD/);
  });
});

