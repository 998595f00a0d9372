import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { stageFleet, type Stage } from '../harness/demo/stage.js';
import { migrate } from '../src/migrate/index.js';
import type { MigrateEvent } from '../src/migrate/events.js';
import { assertExact } from './helpers/exact.js';
import { sql } from './helpers/fleet.js';
import { isUserError } from '../src/errors.js';

/**
 * migrate reports where its wall time goes (the bench's phase breakdown, issue 26): one 'step'
 * event per step of the run, in order, and every batch's seconds by step. The steps partition the
 * run: together they cover at least the seconds the result reports.
 */
describe('migrate: the phase breakdown from its own events', () => {
  let stage: Stage;
  before(async () => {
    stage = await stageFleet({ kind: 'pgbench', shards: 2, scale: 0.3 });
  });
  after(() => stage?.stop());

  for (const verify of [true, false]) {
    it(`${verify ? 'with' : 'without'} checksums: every step once, in order, batches timed by step; the copy exact`, async () => {
      const events: MigrateEvent[] = [];
      const r = await migrate(stage.config, { verify, resync: true, batchRows: 150, onEvent: (e) => events.push(e) });
      assert.equal(r.ok, true);
      await assertExact(stage.config);

      const steps = events.flatMap((e) => (e.type === 'step' ? [e] : []));
      assert.deepEqual(steps.map((s) => s.step), ['preflight', 'reference', 'batches', 'indexes', 'sequences', 'guards', 'cross-shard', 'finish']);
      for (const s of steps) assert.ok(Number.isFinite(s.seconds) && s.seconds >= 0, `${s.step}: ${s.seconds}`);
      const total = steps.reduce((n, s) => n + s.seconds, 0);
      assert.ok(total >= r.seconds - 1e-3, `the steps (${total} s) cover the run (${r.seconds} s)`);
      // the preflight ends when the run starts copying: its step comes right before 'start'
      const at = (p: (e: MigrateEvent) => boolean) => events.findIndex(p);
      assert.equal(at((e) => e.type === 'start'), at((e) => e.type === 'step' && e.step === 'preflight') + 1);

      // pgbench's columns are built-in types, identical on every server: every table goes in binary COPY
      const tables = events.flatMap((e) => (e.type === 'table' ? [e] : []));
      assert.ok(tables.length > 0);
      for (const t of tables) assert.equal(t.format, 'binary', `${t.table} on ${t.shard}`);
      const batches = events.flatMap((e) => (e.type === 'batch' ? [e] : []));
      assert.ok(batches.length >= 2, `several batches (${batches.length})`);
      for (const b of batches) {
        const s = b.seconds!;
        for (const k of ['prepare', 'copy', 'checksums', 'commit', 'journal'] as const) assert.ok(Number.isFinite(s[k]) && s[k] >= 0, `${k}: ${s[k]}`);
        assert.ok(s.copy > 0, 'the COPY takes time');
      }
      // the batches' summed steps fit in the stream-time the 'batches' step allows (two streams by default)
      const perBatch = batches.reduce((n, b) => n + b.seconds!.prepare + b.seconds!.copy + b.seconds!.checksums + b.seconds!.commit, 0);
      assert.ok(perBatch <= 2 * steps.find((s) => s.step === 'batches')!.seconds + 1e-3, `${perBatch} s of batches within 2 streams`);
    });
  }

  // The preflight reads the tables' definitions beside the source's scan and stores them only once
  // the source's checks pass (add-shard builds new shards from them).
  it('the definitions are stored when the checks pass, and not when the source is refused', async () => {
    const { config } = stage;
    await sql(config.catalog, 'DROP SCHEMA IF EXISTS shardctl CASCADE');
    await sql(config.source, 'INSERT INTO pgbench_history (tid, bid, aid, delta) VALUES (1, NULL, 1, 7)');
    try {
      await assert.rejects(migrate(config, { resync: true }), (e) => isUserError(e) && /pgbench_history: 1 row has a NULL bid/.test(e.message));
      assert.deepEqual(await sql(config.catalog, 'SELECT table_name FROM shardctl.table_defs'), [], 'nothing stored on a refusal');
    } finally {
      await sql(config.source, 'DELETE FROM pgbench_history WHERE bid IS NULL');
    }
    assert.equal((await migrate(config, { resync: true })).ok, true);
    const defs = await sql<{ table_name: string; ddl: string }>(config.catalog, 'SELECT table_name, ddl FROM shardctl.table_defs ORDER BY position');
    assert.deepEqual(defs.map((d) => d.table_name).sort(), config.tables.map((t) => `${t.schema}.${t.name}`).sort());
    for (const d of defs) {
      const cols = await sql<{ c: string }>(config.source, `SELECT attname AS c FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped`, [d.table_name]);
      const create = (JSON.parse(d.ddl) as { create: string[] }).create.join('\n');
      for (const { c } of cols) assert.match(create, new RegExp(`\\b${c}\\b`), `${d.table_name}: column ${c} in the stored definition`);
    }
  });
});
