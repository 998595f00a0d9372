import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startFleet, type Fleet } from '../harness/fleet/index.js';
import { parseConfig } from '../src/config/load.js';
import { withClient } from '../src/db/connect.js';
import { loadModel } from '../src/tables/model.js';
import { countUnits, takeInventory } from '../src/unit-copy/inventory.js';

// The inventory reads its grouped rows as a COPY (text format): every unit must come back as the
// very text the source holds (escaped characters decoded), and rows of no unit counted apart.
describe('the inventory read as COPY chunks', () => {
  let fleet: Fleet;
  before(async () => {
    fleet = await startFleet({ shards: 1, replicas: 0 });
    await fleet.source.query('CREATE TABLE notes (id int PRIMARY KEY, tenant text, body text)');
    // awkward tenants: COPY escapes backslash, tab, newline, CR; `\N` as text is not NULL; multi-byte
    // characters; enough rows that the COPY spans many chunks
    await fleet.source.query(String.raw`INSERT INTO notes
      SELECT i, (ARRAY[E'a\\b', E'tab\there', E'new\nline', E'cr\rx', E'\\N', 'N', '한글é', '', NULL])[1 + i % 9] || CASE WHEN i % 9 = 8 THEN '' ELSE (i % 5000)::text END, repeat('x', i % 50)
        FROM generate_series(1, 90000) i`);
    await fleet.source.query(String.raw`INSERT INTO notes VALUES (100001, E'\\N', 'x'), (100002, E'tab\there', 'y'), (100003, E'new\nline', 'z')`);
  });
  after(() => fleet?.stop());

  it('equals the source grouped by its own query, unit by unit, with the NULL rows counted apart', async () => {
    const config = parseConfig(JSON.stringify({
      source: fleet.source.url(),
      strategy: { kind: 'jump', key: 'tenant' },
      shards: fleet.shards.map((s) => ({ id: s.id, primary: s.primary.url() })),
      tables: [{ name: 'notes' }],
    }), 'inventory-copy test');
    await withClient({ label: 'source', url: config.source }, async (c) => {
      const model = await loadModel(config, c);
      const nulls = new Map<string, number>();
      const inventory = await takeInventory(c, model, model.sharded, { bytes: true, nulls });
      const want = (await c.query<{ tenant: string | null; n: string; b: string }>(
        'SELECT tenant, count(*) AS n, sum(pg_column_size(notes.*)) AS b FROM notes GROUP BY tenant')).rows;
      const units = want.filter((w) => w.tenant !== null);
      assert.ok(units.length > 30_000, `many units (${units.length})`);
      assert.equal(inventory.size, units.length);
      for (const w of units) {
        const u = inventory.get(w.tenant!);
        assert.ok(u, `unit ${JSON.stringify(w.tenant)} missing`);
        assert.deepEqual([u.rows, u.bytes], [Number(w.n), Number(w.b)], `unit ${JSON.stringify(w.tenant)}`);
      }
      assert.equal(nulls.get('public.notes'), Number(want.find((w) => w.tenant === null)!.n));
      assert.ok(inventory.has('\\N') && inventory.has('tab\there') && inventory.has('new\nline'), 'escaped texts decoded');
      // migrate's lean inventory (countUnits): the same units, each with its rows, the NULL rows apart
      const counted = new Map<string, number>();
      const counts = await countUnits(c, model, model.sharded, { nulls: counted });
      assert.equal(counts.size, units.length);
      for (const w of units) assert.equal(counts.get(w.tenant!), Number(w.n), `unit ${JSON.stringify(w.tenant)} counted`);
      assert.equal(counted.get('public.notes'), nulls.get('public.notes'));
    });
  });
});
