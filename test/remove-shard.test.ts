import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../src/config/load.js';
import { createRouter } from '../src/index.js';
import type { Stage } from '../harness/demo/stage.js';
import { stageMigrated } from './helpers/stage.js';
import { migrate } from '../src/migrate/index.js';
import { runCli, runCliKilledAt } from './helpers/cli.js';
import { assertExact } from './helpers/exact.js';
import { sql } from './helpers/fleet.js';

const placedOn = async (catalog: string, shard: string) =>
  Number((await sql(catalog, 'SELECT count(*) AS n FROM shardctl.placements WHERE shard = $1', [shard]))[0].n);

describe('remove-shard: POS fixture (jump)', () => {
  let stage: Stage;
  let cfg: string;
  before(async () => {
    stage = await stageMigrated({ kind: 'pos', shards: 3, scale: 0.01 });
    cfg = stage.configPath;
  });
  after(() => stage?.stop());

  it('refuses any shard but the last, plainly, and offers pins', () => {
    const r = runCli(['remove-shard', 's1', '--apply', '--config', cfg]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /shard s1 cannot leave: with the jump hash only the last shard \(s2\) can be removed/);
    assert.match(r.stderr, /pin its \d+ tenant\(s\) to other shards \(shardctl pin TENANT SHARD --apply\)/);
    assert.equal(loadConfig(cfg).shards.length, 3);
  });

  it('the last shard: plan, then a drain interrupted mid-move, then a rerun that empties and removes it; exact', async () => {
    const catalog = stage.config.catalog;
    const n = await placedOn(catalog, 's2');
    assert.ok(n >= 1);
    const plan = runCli(['remove-shard', 's2', '--config', cfg]);
    assert.equal(plan.status, 0, plan.stderr);
    assert.match(plan.stdout, new RegExp(`${n} tenant\\(s\\) of shard s2 reassigned`));
    assert.match(plan.stdout, /nothing was changed\. Apply with: shardctl remove-shard s2 --apply/);
    assert.equal(loadConfig(cfg).shards.length, 3, 'the plan writes nothing');

    const killed = runCliKilledAt('copied', ['remove-shard', 's2', '--apply', '--offline', '--config', cfg]);
    assert.equal(killed.status, null, killed.stderr);
    assert.equal(loadConfig(cfg).shards.length, 3, 'the shard stays while it holds data');

    // an index a killed `migrate --indexes-after` dropped on s2 and never built
    await sql(catalog, `INSERT INTO shardctl.deferred_indexes (shard, index_name, table_name, ddl) VALUES ('s2', 'public.orders_note', 'public.orders', 'CREATE INDEX orders_note ON public.orders (id)')`);
    const r = runCli(['remove-shard', 's2', '--apply', '--config', cfg]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /shard s2 holds nothing and has left .* and the catalog/);
    const c = loadConfig(cfg);
    assert.deepEqual(c.shards.map((s) => s.id), ['s0', 's1']);
    assert.deepEqual(c.strategy.kind === 'jump' && c.strategy.pins, {}, 'the drain pins are redundant without s2 and are gone');
    assert.match(readFileSync(cfg, 'utf8'), /^# written by shardctl/);
    assert.equal(await placedOn(catalog, 's2'), 0);
    assert.deepEqual(await sql(catalog, 'SELECT id FROM shardctl.shards ORDER BY position'), [{ id: 's0' }, { id: 's1' }]);
    assert.equal((await sql(catalog, `SELECT shardctl.shard_for_key('1') AS s`))[0].s, c.shards.length ? createRouter(c).shardFor('1') : '');
    assert.deepEqual(await sql(catalog, 'SELECT shard FROM shardctl.deferred_indexes'), [], 'the deferred index left with its shard');
    const again = await migrate(c);
    assert.equal(again.ok, true, JSON.stringify(again.errors));
    await assertExact(c);
  });
});

describe('remove-shard: location fixture (h3)', () => {
  let stage: Stage;
  before(async () => {
    stage = await stageMigrated({ kind: 'location', shards: 3, scale: 0.002 });
  });
  after(() => stage?.stop());

  it('remaps its cells onto the remaining shards, moves them, removes it; exact', async () => {
    const cfg = stage.configPath;
    const mapped = (c = loadConfig(cfg)) => (c.strategy.kind === 'h3' ? c.strategy.mapping : []);
    const cells = mapped().filter((m) => m.shard === 's2').map((m) => m.cell);
    assert.ok(cells.length >= 1);
    const refused = runCli(['remove-shard', 's0', '--config', cfg]);
    assert.equal(refused.status, 2);
    assert.match(refused.stderr, /shard s0 is the default shard/);
    const r = runCli(['remove-shard', 's2', '--apply', '--config', cfg]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`${cells.length} cell\\(s\\) of shard s2 reassigned`));
    const c = loadConfig(cfg);
    assert.deepEqual(c.shards.map((s) => s.id), ['s0', 's1']);
    for (const cell of cells) assert.ok(['s0', 's1'].includes(mapped(c).find((m) => m.cell === cell)!.shard));
    assert.equal(await placedOn(c.catalog, 's2'), 0);
    await assertExact(c);
  });
});
