import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Stage } from '../harness/demo/stage.js';
import { stageMigrated } from './helpers/stage.js';
import { topologyRouter } from '../src/routing/router.js';
import { moveStreamNames } from '../src/rebalance/online.js';
import { watchCli } from './helpers/cli.js';
import { sql } from './helpers/fleet.js';
import { fenceHold, session } from './helpers/fence-hold.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


/**
 * An online move whose new shard stalls after the old shard is fenced (the test holds the row the
 * move's last commit there must write) gives up within its bound and lifts the fence: the unit stays
 * placed on, and writable on, its old shard while the new shard is still stuck. Staged with locks
 * only (helpers/fence-hold.ts): the move is held at its fence while the test locks the new shard's
 * position row.
 */
describe('online move: the wait after the fence is bounded', { timeout: 300_000 }, () => {
  let stage: Stage;
  before(async () => {
    stage = await stageMigrated({ kind: 'pos', shards: 2, scale: 0.01 });
  });
  after(() => stage?.stop());

  it('a new shard stuck after the fence: the fence on the old shard is lifted while it is still stuck, the unit stays there', async () => {
    const c = stage.config;
    const tenant = '3';
    const from = topologyRouter(c).shardFor(tenant);
    const to = c.shards.map((s) => s.id).find((s) => s !== from)!;
    const url = (id: string) => c.shards.find((s) => s.id === id)!.primary;
    const slot = moveStreamNames(tenant).slot;
    const hold = await fenceHold(url(from), url(to), slot);
    const position = await session(url(to)); // holds the new shard's last commit
    let gateOpen = false;
    const pin = watchCli(['pin', tenant, to, '--apply', '--json', '--config', stage.configPath], (e) => {
      if (e.type === 'step' && e.step === 'streaming' && !gateOpen) {
        gateOpen = true;
        void hold.streaming();
      }
    }, { SHARDCTL_MOVE_TIMEOUT: '3s' });
    const fenced = async () => (await sql(url(from), 'SELECT 1 FROM shardctl.fenced_units WHERE unit = $1', [tenant])).length > 0;
    try {
      // the fence on the old shard waits for the key-share lock: take the position row, then let it in
      await hold.fenceWaiting();
      await position.query('BEGIN');
      await position.query('SELECT * FROM shardctl.follow_position WHERE slot = $1 FOR UPDATE', [slot]);
      await hold.letIn();
      for (let i = 0; i < 200 && !(await fenced()); i++) await sleep(50);
      assert.ok(await fenced(), 'the old shard is fenced');
      // the new shard cannot commit the last changes; the fence must not outlive the bound
      let lifted = false;
      for (let i = 0; i < 600 && !lifted; i++) {
        lifted = !(await fenced());
        if (!lifted) await sleep(100);
      }
      assert.ok(lifted, 'the fence on the old shard is lifted while the new shard is still stuck');
      await sql(url(from), `UPDATE themes SET name = name || ' writable' WHERE id = (SELECT min(id) FROM themes WHERE restaurant_id = $1)`, [tenant]);
    } finally {
      await position.query('ROLLBACK').catch(() => undefined);
      await position.end().catch(() => undefined);
      await hold.end();
    }
    const r = await pin;
    assert.equal(r.status, 3, r.stdout + r.stderr); // could not proceed: the bound was missed, nothing moved
    assert.match(r.stdout + r.stderr, new RegExp(`shard ${to} did not apply and prove the last changes within 3s of the fence on shard ${from}`));
    assert.equal((await sql(c.catalog, 'SELECT shard FROM shardctl.placements WHERE unit = $1', [tenant]))[0]?.shard, from, 'the unit stays placed on its old shard');
    assert.equal(await fenced(), false);
  });
});
