import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { stageFleet, type Stage } from '../harness/demo/stage.js';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { parseConfig } from '../src/config/load.js';
import { withClient } from '../src/db/connect.js';
import { isUserError } from '../src/errors.js';
import { plan } from '../src/plan/index.js';
import { unitTotals } from '../src/plan/volumes.js';
import { loadModel } from '../src/tables/model.js';
import { takeInventory } from '../src/unit-copy/inventory.js';

describe("plan's unit totals (server-summed, paged through a cursor)", () => {
  let stage: Stage;
  before(async () => {
    stage = await stageFleet({ kind: 'pos', shards: 2, scale: 0.005 });
  });
  after(() => stage?.stop());

  it("equal the inventory's per unit and per table over every sharded table (via children too), in pages of 3", async () => {
    await withClient({ label: 'source', url: stage.config.source }, async (c) => {
      const model = await loadModel(stage.config, c);
      assert.ok(model.sharded.length > 2 && model.sharded.some((t) => t.config.route.kind === 'via'), 'several tables, some reached through a parent');
      const inventory = await takeInventory(c, model, model.sharded, { bytes: true });
      for (const page of [3, 50_000]) {
        const totals = await unitTotals(c, model, model.sharded, page);
        assert.equal(totals.units.length, inventory.size);
        assert.equal(new Set(totals.units).size, totals.units.length, 'each unit once');
        totals.units.forEach((unit, i) => {
          const u = inventory.get(unit);
          assert.ok(u, `unit ${unit}`);
          assert.deepEqual([totals.rows[i], totals.bytes[i]], [u.rows, u.bytes], `unit ${unit}`);
        });
        for (const t of model.sharded) {
          let rows = 0;
          let bytes = 0;
          for (const u of inventory.values()) for (const v of u.tables) if (v.table === t.name) (rows += v.rows), (bytes += v.bytes);
          assert.deepEqual(totals.tables.get(t.name), { rows, bytes }, t.name);
        }
        // one table alone takes the query without the second grouping
        const one = await unitTotals(c, model, model.sharded.slice(0, 1), page);
        assert.equal(one.units.length, (await takeInventory(c, model, model.sharded.slice(0, 1))).size);
      }
      assert.equal((await c.query('SELECT now() = statement_timestamp() AS outside')).rows[0].outside, true, 'the cursor transaction is closed');
    });
  });

  it('refuses rows of no unit (a NULL key) by table, alone or beside other tables, instead of crashing on them', async () => {
    await withClient({ label: 'source', url: stage.config.source }, async (c) => {
      await c.query('CREATE TABLE plan_nulls (restaurant_id bigint, v int); CREATE TABLE plan_fine (restaurant_id bigint, v int)');
      await c.query('INSERT INTO plan_nulls VALUES (1, 1), (NULL, 2), (NULL, 3); INSERT INTO plan_fine VALUES (1, 1), (2, 2)');
    });
    const doc = parse(readFileSync(stage.configPath, 'utf8'));
    for (const tables of [[{ name: 'plan_nulls' }], [{ name: 'plan_fine' }, { name: 'plan_nulls' }]]) {
      const config = parseConfig(JSON.stringify({ ...doc, tables }), 'nulls');
      await assert.rejects(plan(config), (e: Error) => {
        assert.ok(isUserError(e), e.stack);
        assert.equal(e.kind, 'blocked');
        assert.match(e.message, /^source: table public\.plan_nulls: 2 rows have a NULL routing key/);
        return true;
      });
    }
    const fine = await plan(parseConfig(JSON.stringify({ ...doc, tables: [{ name: 'plan_fine' }] }), 'fine'));
    assert.equal(fine.units, 2);
  });
});
