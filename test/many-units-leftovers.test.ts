import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startFleet, type Fleet } from '../harness/fleet/index.js';
import { parseConfig } from '../src/config/load.js';
import type { Config } from '../src/config/types.js';
import { connect } from '../src/db/connect.js';
import { migrate } from '../src/migrate/index.js';
import { journalLanes } from '../src/migrate/journal-lanes.js';
import { topologyRouter } from '../src/routing/router.js';
import { assertExact } from './helpers/exact.js';
import { sql } from './helpers/fleet.js';

/*
 * Cost per unit (issue 26): a batch of units the preflight saw on no shard skips the shard's
 * DELETE of their rows, and a batch of units the catalog had not placed skips the journal's DELETE
 * of their placements; both deleted nothing. These tests hold the cases where they must still
 * delete: a unit whose rows a shard holds without a placement (a lost journal, a DBA's cleanup),
 * stale and with an extra child row; --resync; --units naming a unit twice; text keys an array
 * literal or COPY line must quote (empty, a quote, NULL as text, commas, braces, backslashes).
 * Checked with the test's own SQL and assertExact (the shards' rows against the source's, row by row).
 */

const ODD = ['', "O'Brien", 'NULL', ' spaced ', 'say "hi"', 'back\\slash', 'x,y', '{z}', 'tab\there', '\\N'];
const KEYS = [...ODD, ...Array.from({ length: 400 }, (_, i) => `k${i}`)];

describe('migrate: leftover rows of unplaced units, odd keys, duplicates', () => {
  let fleet: Fleet;
  let config: Config;
  before(async () => {
    fleet = await startFleet({ shards: 2 });
    for (const s of [fleet.source, ...fleet.shards.map((x) => x.primary)]) {
      await s.query('CREATE TABLE docs (id bigint PRIMARY KEY, tenant text NOT NULL, body text NOT NULL)');
      await s.query('CREATE INDEX ON docs (tenant)');
      // no primary key: a row copied twice would not be refused, only the comparisons can see it
      await s.query('CREATE TABLE notes (doc_id bigint NOT NULL, note text)');
    }
    // tenant i holds i % 3 + 1 docs, spread over the table; every other doc has a note
    await fleet.source.query(
      `INSERT INTO docs SELECT row_number() OVER (ORDER BY g, i), k, md5(k || g) FROM unnest($1::text[]) WITH ORDINALITY AS u(k, i), generate_series(0, i::int % 3) g`,
      [KEYS],
    );
    await fleet.source.query(`INSERT INTO notes SELECT id, 'n' || id FROM docs WHERE id % 2 = 0`);
    config = parseConfig(JSON.stringify({
      source: fleet.source.url(),
      strategy: { kind: 'jump', key: 'tenant' },
      shards: fleet.shards.map((s) => ({ id: s.id, primary: s.primary.url() })),
      tables: [{ name: 'docs' }, { name: 'notes', via: 'doc_id -> docs.id' }],
    }), 'leftovers test');
  });
  after(() => fleet?.stop());

  const shardUrl = (unit: string) => config.shards.find((s) => s.id === topologyRouter(config).shardFor(unit))!.primary;

  /**
   * The catalog against the source, by the test's own SQL: every unit in `units` placed once, with
   * one proof per table it has rows in (none for the `unproven`, copied without the checksums).
   */
  async function assertJournal(units: readonly string[], unproven: readonly string[] = []): Promise<void> {
    const docs = new Map((await sql(config.source, 'SELECT tenant AS unit, count(*)::int AS n FROM docs GROUP BY 1')).map((x) => [x.unit as string, x.n as number]));
    const notes = new Map((await sql(config.source, 'SELECT d.tenant AS unit, count(*)::int AS n FROM notes n JOIN docs d ON d.id = n.doc_id GROUP BY 1')).map((x) => [x.unit as string, x.n as number]));
    const placed = new Map((await sql(config.catalog, 'SELECT unit, shard, rows::int AS rows FROM shardctl.placements')).map((p) => [p.unit as string, p]));
    const proofs = await sql(config.catalog, 'SELECT unit, table_name, rows::int AS rows FROM shardctl.placement_tables');
    assert.equal(placed.size, units.length, 'units placed');
    const proven = units.filter((u) => !unproven.includes(u));
    assert.equal(proofs.length, proven.length + proven.filter((u) => notes.has(u)).length, 'one proof per unit and table with rows, none twice');
    const proofOf = new Map(proofs.map((p) => [`${p.unit}|${p.table_name}`, p.rows]));
    for (const unit of units) {
      const p = placed.get(unit);
      assert.equal(p?.shard, topologyRouter(config).shardFor(unit), `unit ${JSON.stringify(unit)} placed where it routes`);
      if (unproven.includes(unit)) continue; // no sums taken: no rows recorded either
      assert.equal(p.rows, docs.get(unit)! + (notes.get(unit) ?? 0), `unit ${JSON.stringify(unit)}: rows of both tables`);
      assert.equal(proofOf.get(`${unit}|public.docs`), docs.get(unit), `unit ${JSON.stringify(unit)}: proof of docs`);
      assert.equal(proofOf.get(`${unit}|public.notes`), notes.get(unit), `unit ${JSON.stringify(unit)}: proof of notes`);
    }
  }

  it('--units naming odd keys, one of them twice: exactly those units, each copied and journaled once', async () => {
    const asked = [...ODD, "O'Brien", '', 'k7'];
    const r = await migrate(config, { units: asked });
    assert.equal(r.ok, true, JSON.stringify(r.errors));
    assert.equal(r.units.copied, ODD.length + 1);
    await assertJournal([...ODD, 'k7']);
    // on the shards, by the test's own count: each asked unit's docs once, nothing of any other unit
    for (const s of config.shards) {
      const [n] = await sql(s.primary, 'SELECT count(*)::int AS docs, count(DISTINCT tenant)::int AS units FROM docs');
      const mine = [...ODD, 'k7'].filter((u) => topologyRouter(config).shardFor(u) === s.id);
      const [want] = await sql(config.source, 'SELECT count(*)::int AS docs FROM docs WHERE tenant = ANY($1::text[])', [mine]);
      assert.deepEqual(n, { docs: want.docs, units: mine.length }, `shard ${s.id}`);
    }
  });

  it('a shard holding stale rows of units no placement names: deleted before the copy, exact without the checksums', async () => {
    const first = await migrate(config, {});
    assert.equal(first.ok, true, JSON.stringify(first.errors));
    await assertExact(config);
    await assertJournal(KEYS);
    // the journal of some units lost (the catalog forgets them), their rows left on the shards, made
    // stale, with an extra child row: the rerun copies them again and must delete those rows first
    const lost = ["O'Brien", '', 'NULL', 'x,y', 'back\\slash', 'k3', 'k200'];
    await sql(config.catalog, 'DELETE FROM shardctl.placements WHERE unit = ANY($1::text[])', [lost]);
    for (const unit of lost) {
      await sql(shardUrl(unit), `UPDATE docs SET body = 'stale' WHERE tenant = $1`, [unit]);
      await sql(shardUrl(unit), `INSERT INTO notes SELECT id, 'extra' FROM docs WHERE tenant = $1 LIMIT 1`, [unit]);
    }
    const again = await migrate(config, { verify: false });
    assert.equal(again.ok, true, JSON.stringify(again.errors));
    assert.equal(again.units.copied, lost.length);
    assert.equal(again.units.skipped, KEYS.length - lost.length);
    await assertExact(config);
    await assertJournal(KEYS, lost); // copied without the checksums: placed, with no proof
  });

  it('--resync in batches of a few units, two at a time: every placement and proof replaced, none twice, none lost', async () => {
    // many journals, due two at once: they run on two catalog sessions side by side (journal-lanes.ts)
    let batches = 0;
    const r = await migrate(config, { resync: true, batchRows: 60, concurrency: 2, onEvent: (e) => void (e.type === 'batch' && batches++) });
    assert.equal(r.ok, true, JSON.stringify(r.errors));
    assert.ok(batches >= 10, `${batches} batches`);
    assert.equal(r.units.copied, KEYS.length);
    await assertExact(config);
    await assertJournal(KEYS);
  });

  it('journal lanes: a catalog refusing a second session leaves every journal to the run\'s own, one at a time', async () => {
    const main = await connect({ label: 'catalog', url: config.catalog });
    const lanes = journalLanes(main, { label: 'catalog', url: 'postgres://nobody@127.0.0.1:1/none' });
    try {
      await main.query('CREATE TEMP TABLE journal_probe (n int)');
      let open = 0;
      const done = await Promise.all(Array.from({ length: 6 }, (_, n) => lanes.run(async (c) => {
        assert.equal(c, main, 'the run\'s own session');
        assert.equal(open++, 0, 'no two journals at once on one session');
        await c.query('BEGIN');
        await c.query('INSERT INTO journal_probe VALUES ($1)', [n]);
        await c.query('SELECT pg_sleep(0.02)');
        await c.query('COMMIT');
        open--;
        return n;
      })));
      assert.deepEqual(done, [0, 1, 2, 3, 4, 5]);
      const [row] = await sql(config.catalog, 'SELECT 1 AS x'); // the catalog still answers
      assert.equal(row.x, 1);
      assert.equal((await main.query('SELECT count(*)::int AS n FROM journal_probe')).rows[0].n, 6);
    } finally {
      await lanes.close();
      await main.end();
    }
  });
});
