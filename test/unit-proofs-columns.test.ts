import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startFleet, type Fleet } from '../harness/fleet/index.js';
import { loadConfig } from '../src/config/load.js';
import { migrate } from '../src/migrate/index.js';
import { topologyRouter } from '../src/routing/router.js';
import { assertExact } from './helpers/exact.js';
import { sql } from './helpers/fleet.js';

/*
 * A batch's per-unit sums stream in as COPY lines and its proofs go to the catalog as COPY lines
 * (unit-copy/unit-sums.ts, catalog/placements.ts): text tenant keys that COPY escapes (tab, newline,
 * carriage return, backslash, the text `\N`) must come back as the very unit, or a unit would be
 * placed with no proof. Checked with the test's own SQL: every unit placed where it routes, on that
 * shard with its rows, with the source's row count as its proof; then --resync and --tables reruns
 * replace the journal without duplicating or losing a proof.
 */

const ODD = ['a\tb', 'line\nbreak', 'cr\rx', 'back\\slash', '\\N', '\\\\N', 'quote"s', '{brace,comma}', 'ünï ✓', 'trailing\\'];
const KEYS = [...ODD, ...Array.from({ length: 300 }, (_, i) => `t${i}`)];

describe('migrate: per-unit sums and proofs of text keys COPY escapes', () => {
  let fleet: Fleet;
  let cfg: string;
  before(async () => {
    fleet = await startFleet({ shards: 2 });
    for (const s of [fleet.source, ...fleet.shards.map((x) => x.primary)]) {
      await s.query('CREATE TABLE docs (id bigint PRIMARY KEY, tenant text NOT NULL, body text NOT NULL)');
      await s.query('CREATE TABLE notes (id bigint PRIMARY KEY, doc_id bigint NOT NULL REFERENCES docs (id), note text)');
    }
    // tenant i holds i % 4 + 1 docs; every third doc has a note
    await fleet.source.query(
      `INSERT INTO docs SELECT row_number() OVER (), k, md5(k || g) FROM unnest($1::text[]) WITH ORDINALITY AS u(k, i), generate_series(0, i::int % 4) g`,
      [KEYS],
    );
    await fleet.source.query(`INSERT INTO notes SELECT id, id, 'n' || id FROM docs WHERE id % 3 = 0`);
    cfg = join(fleet.dir, 'docs.yaml');
    const doc = {
      source: fleet.source.url(),
      strategy: { kind: 'jump', key: 'tenant' },
      shards: fleet.shards.map((s) => ({ id: s.id, primary: s.primary.url() })),
      tables: [{ name: 'docs' }, { name: 'notes', via: 'doc_id -> docs.id' }],
    };
    writeFileSync(cfg, JSON.stringify(doc), { mode: 0o600 });
  });
  after(() => fleet?.stop());

  /** The source's own counts per unit and table, against the catalog and the shard it names. */
  async function assertJournal(runId?: number): Promise<void> {
    const config = loadConfig(cfg);
    const router = topologyRouter(config);
    const docs = new Map((await sql(config.source, 'SELECT tenant AS unit, count(*)::int AS n FROM docs GROUP BY 1')).map((x) => [x.unit as string, x.n as number]));
    const notes = new Map((await sql(config.source, 'SELECT d.tenant AS unit, count(*)::int AS n FROM notes n JOIN docs d ON d.id = n.doc_id GROUP BY 1')).map((x) => [x.unit as string, x.n as number]));
    const placed = new Map((await sql(config.catalog, 'SELECT unit, shard, rows::int AS rows, run_id::int AS run FROM shardctl.placements')).map((p) => [p.unit as string, p]));
    const proofs = await sql(config.catalog, `SELECT unit, table_name, rows::int AS rows, checksum FROM shardctl.placement_tables`);
    assert.equal(placed.size, KEYS.length, 'every unit placed');
    assert.equal(proofs.length, KEYS.length + notes.size, 'one proof per unit and table with rows, none twice');
    const proofOf = new Map(proofs.map((p) => [`${p.unit}|${p.table_name}`, p]));
    for (const unit of KEYS) {
      const p = placed.get(unit);
      assert.ok(p, `unit ${JSON.stringify(unit)} placed`);
      assert.equal(p.shard, router.shardFor(unit), `unit ${JSON.stringify(unit)} placed where it routes`);
      if (runId !== undefined) assert.equal(p.run, runId, `unit ${JSON.stringify(unit)} journaled by run ${runId}`);
      assert.equal(p.rows, docs.get(unit)! + (notes.get(unit) ?? 0), `unit ${JSON.stringify(unit)}: rows of both tables`);
      const d = proofOf.get(`${unit}|public.docs`);
      assert.equal(d?.rows, docs.get(unit), `unit ${JSON.stringify(unit)}: proof of docs`);
      assert.notEqual(d.checksum, '0');
      assert.equal(proofOf.get(`${unit}|public.notes`)?.rows, notes.get(unit), `unit ${JSON.stringify(unit)}: proof of notes`);
      const [onShard] = await sql(config.shards.find((s) => s.id === p.shard)!.primary, 'SELECT count(*)::int AS n FROM docs WHERE tenant = $1', [unit]);
      assert.equal(onShard.n, docs.get(unit), `unit ${JSON.stringify(unit)}: its docs on ${p.shard}`);
    }
  }

  it('every odd key placed with its proofs; --resync and --tables rerun replace the journal exactly', async () => {
    const config = loadConfig(cfg);
    const r = await migrate(config, {});
    assert.equal(r.ok, true, JSON.stringify(r.errors));
    assert.equal(r.units.copied, KEYS.length);
    await assertExact(config);
    await assertJournal(r.runId);

    const again = await migrate(config, { resync: true });
    assert.equal(again.ok, true, JSON.stringify(again.errors));
    assert.equal(again.units.copied, KEYS.length);
    await assertExact(config);
    await assertJournal(again.runId);

    const partial = await migrate(config, { tables: ['notes'] });
    assert.equal(partial.ok, true, JSON.stringify(partial.errors));
    await assertExact(config);
    await assertJournal(again.runId); // a partial re-copy replaces the proofs of its tables, not the units' totals
  });
});
