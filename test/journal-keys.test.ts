import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { startFleet, type Fleet } from '../harness/fleet/index.js';
import { MIGRATIONS } from '../src/catalog/schema.js';
import { JOURNAL_KEYS_MIGRATION } from '../src/catalog/journal-keys.js';
import { loadConfig } from '../src/config/load.js';
import type { Config } from '../src/config/types.js';
import { migrate } from '../src/migrate/index.js';
import { runCli, watchCli } from './helpers/cli.js';
import { assertExact } from './helpers/exact.js';
import { resetShards, sql } from './helpers/fleet.js';

/*
 * The journal's keys (catalog/journal-keys.ts, issue 26): a batch's placements and proofs are
 * written without a per-row foreign-key check, the one door keeping what the keys checked. An
 * older catalog upgrades in place; deleting or truncating placements still forgets their proofs; a
 * run killed inside its journal transaction leaves no placement half-written, and a rerun is exact.
 * The oracle is this file's own SQL: the source's rows per tenant against the catalog's rows.
 */

const TENANTS = 400;
const DDL = [
  'CREATE TABLE items (id bigint PRIMARY KEY, tenant bigint NOT NULL, payload text NOT NULL)',
  'CREATE INDEX ON items (tenant)',
  'CREATE TABLE item_notes (id bigint PRIMARY KEY, item_id bigint NOT NULL REFERENCES items (id), note text)',
];

describe('catalog journal without per-row foreign keys', () => {
  let fleet: Fleet;
  let path: string;
  let config: Config;
  before(async () => {
    fleet = await startFleet({ shards: 2 });
    for (const s of [fleet.source, ...fleet.shards.map((x) => x.primary)]) for (const d of DDL) await s.query(d);
    await fleet.source.query(`INSERT INTO items SELECT i, i % ${TENANTS}, md5(i::text) FROM generate_series(1, ${TENANTS * 3}) i`);
    await fleet.source.query(`INSERT INTO item_notes SELECT i, i, 'note ' || i FROM generate_series(1, ${TENANTS * 3}, 3) i`);
    path = join(fleet.dir, 'shardctl.json');
    writeFileSync(
      path,
      JSON.stringify({
        source: fleet.source.url(),
        strategy: { kind: 'jump', key: 'tenant' },
        shards: fleet.shards.map((s) => ({ id: s.id, primary: s.primary.url() })),
        tables: [{ name: 'items' }, { name: 'item_notes', via: 'item_id -> items.id' }],
      }),
      { mode: 0o600 },
    );
    config = loadConfig(path);
  });
  after(() => fleet?.stop());

  /** Every source tenant placed with rows of both tables and a proof per table it has rows in; no proof without its placement. */
  async function assertJournalExact(extra: string[] = []): Promise<void> {
    const want = new Map<string, number>();
    for (const r of await sql(config.source, 'SELECT tenant::text AS unit, count(*)::int AS n FROM items GROUP BY 1')) want.set(r.unit, r.n);
    const notes = new Map((await sql(config.source, 'SELECT i.tenant::text AS unit, count(*)::int AS n FROM item_notes x JOIN items i ON i.id = x.item_id GROUP BY 1')).map((r) => [r.unit, r.n]));
    const placed = new Map((await sql(config.catalog, 'SELECT unit, rows::int AS rows FROM shardctl.placements')).map((p) => [p.unit, p.rows]));
    assert.deepEqual([...placed.keys()].sort(), [...want.keys(), ...extra].sort(), 'placed units');
    const proofs = await sql(config.catalog, 'SELECT unit, table_name, rows::int AS rows FROM shardctl.placement_tables');
    const proofOf = new Map(proofs.map((p) => [`${p.unit} ${p.table_name}`, p.rows]));
    for (const [unit, n] of want) {
      assert.equal(placed.get(unit), n + (notes.get(unit) ?? 0), `unit ${unit}: rows of both tables`);
      assert.equal(proofOf.get(`${unit} public.items`), n, `unit ${unit}: proof of items`);
      assert.equal(proofOf.get(`${unit} public.item_notes`), notes.get(unit), `unit ${unit}: proof of item_notes`);
    }
    const orphans = await sql(config.catalog, 'SELECT t.unit FROM shardctl.placement_tables t LEFT JOIN shardctl.placements p USING (unit) WHERE p.unit IS NULL');
    assert.deepEqual(orphans, [], 'every proof has its placement');
  }

  it('an older catalog upgrades: its placements kept, no per-row key checks left, deleting a placement still forgets its proofs', async () => {
    await resetShards(config);
    // the catalog as the release before migration 10 left it: every migration before the journal's keys went, one unit placed with its proof
    const c = new pg.Client({ connectionString: config.catalog });
    await c.connect();
    try {
      await c.query('BEGIN');
      await c.query('CREATE SCHEMA shardctl');
      const before = MIGRATIONS.indexOf(JOURNAL_KEYS_MIGRATION);
      for (const m of MIGRATIONS.slice(0, before)) await c.query(m);
      await c.query(`INSERT INTO shardctl.meta VALUES ('schema_version', $1)`, [String(before)]);
      const run = (await c.query(`INSERT INTO shardctl.runs (command, status, pid, host) VALUES ('migrate', 'ok', 1, 'old') RETURNING id`)).rows[0].id;
      await c.query(`INSERT INTO shardctl.placements (unit, shard, rows, run_id) VALUES ('retired', $1, 2, $2)`, [fleet.shards[0]!.id, run]);
      await c.query(`INSERT INTO shardctl.placement_tables VALUES ('retired', 'public.items', 2, '42')`);
      await c.query('COMMIT');
    } finally {
      await c.end();
    }
    const r = await migrate(config, {});
    assert.equal(r.ok, true, JSON.stringify(r.errors));
    const version = await sql(config.catalog, `SELECT value FROM shardctl.meta WHERE key = 'schema_version'`);
    assert.equal(version[0].value, String(MIGRATIONS.length));
    const keys = await sql(
      config.catalog,
      `SELECT conname FROM pg_constraint WHERE contype = 'f' AND conrelid IN ('shardctl.placements'::regclass, 'shardctl.placement_tables'::regclass)`,
    );
    assert.deepEqual(keys, [], 'the journal tables carry no foreign key (each was a per-row check on every journaled unit)');
    await assertJournalExact(['retired']);
    await assertExact(config);

    // the proofs go with their placement, as the cascade did
    await sql(config.catalog, `DELETE FROM shardctl.placements WHERE unit = 'retired'`);
    assert.deepEqual(await sql(config.catalog, `SELECT * FROM shardctl.placement_tables WHERE unit = 'retired'`), []);
    await assertJournalExact();

    // a resync replaces the units' placements and proofs whole
    await sql(config.source, `UPDATE items SET payload = 'changed' WHERE tenant IN (7, 8)`);
    const again = await migrate(config, { resync: true, units: ['7', '8'] });
    assert.equal(again.ok, true, JSON.stringify(again.errors));
    assert.equal(again.units.copied, 2);
    await assertJournalExact();
    await assertExact(config);

    // emptying the placements empties the proofs
    await sql(config.catalog, 'TRUNCATE shardctl.placements');
    assert.deepEqual(await sql(config.catalog, 'SELECT count(*)::int AS n FROM shardctl.placement_tables'), [{ n: 0 }]);
  });

  it('SIGKILL inside the journal transaction: no placement without its proofs, and a rerun is exact', async () => {
    await resetShards(config);
    // a first run creates the catalog (one unit), so the lock below can be taken on its proofs table
    assert.equal(runCli(['migrate', '--config', path, '--units', '1']).status, 0);
    const before = await sql(config.catalog, 'SELECT unit FROM shardctl.placements');
    assert.deepEqual(before, [{ unit: '1' }]);
    const holder = new pg.Client({ connectionString: config.catalog });
    await holder.connect();
    let journalPid: number | undefined;
    try {
      // the proofs table locked: the run's first journal transaction writes its placements, then waits on its proofs
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE shardctl.placement_tables IN SHARE MODE');
      const killed = await watchCli(['migrate', '--config', path, '--json', '--concurrency', '2', '--batch-rows', '300'], (e, child) => {
        if (e.type !== 'start') return;
        const poll = async (): Promise<void> => {
          const w = await sql(
            config.catalog,
            `SELECT a.pid FROM pg_stat_activity a
              WHERE a.wait_event_type = 'Lock' AND a.query LIKE 'COPY shardctl.placement_tables%'
                AND EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.relation = 'shardctl.placements'::regclass AND l.mode = 'RowExclusiveLock')`,
          );
          if (w.length) {
            journalPid = w[0].pid;
            child.kill('SIGKILL');
          } else setTimeout(() => void poll(), 50);
        };
        void poll();
      });
      assert.equal(killed.status, null, 'the process was killed');
      assert.ok(journalPid, 'killed while its journal transaction waited on the proofs');
    } finally {
      await holder.query('COMMIT');
      await holder.end();
    }
    // the journal's backend, freed by the lock, finds its client gone and rolls back
    for (let i = 0; i < 200 && (await sql(config.catalog, 'SELECT 1 FROM pg_stat_activity WHERE pid = $1', [journalPid])).length; i++) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(await sql(config.catalog, 'SELECT unit FROM shardctl.placements'), before, 'the killed journal placed nothing');
    assert.deepEqual(await sql(config.catalog, `SELECT DISTINCT unit FROM shardctl.placement_tables`), before, 'and wrote no proof');

    const r = runCli(['migrate', '--config', path, '--json']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).units.copied, TENANTS - 1);
    await assertJournalExact();
    await assertExact(config);
  });
});
