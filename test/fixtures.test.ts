// Fixture generators against a real PostgreSQL server: schema, row counts, determinism,
// referential integrity, and the H3 properties the location fixture promises.
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cellToParent, getResolution, latLngToCell } from 'h3-js';
import pg from 'pg';
import {
  createFixtureSchema,
  expectedFixtureRows,
  fixtureSchemaSql,
  fixtureTables,
  loadFixture,
  type FixtureKind,
  type TableSpec,
} from '../harness/fixtures/index.js';
import { startServer } from '../harness/fleet/index.js';

const POS_SCALE = 0.01; // 10 restaurants, ~15 MB
const LOC_SCALE = 0.001; // 100 profiles (the smallest location scale)

/** A server to test against: SHARDCTL_TEST_URL if set, else a throwaway embedded one. */
async function acquireServer(): Promise<{ url(db: string): string; stop(): Promise<void> }> {
  const env = process.env.SHARDCTL_TEST_URL;
  if (env) {
    return {
      url: (db) => Object.assign(new URL(env), { pathname: `/${db}` }).toString(),
      stop: async () => {},
    };
  }
  const dir = await mkdtemp(path.join(tmpdir(), 'shardctl-fx-'));
  await chmod(dir, 0o755); // mkdtemp makes 0700; the server's OS user must traverse it
  const server = await startServer({ name: 'fx', dir }).catch(async (err: unknown) => {
    await rm(dir, { recursive: true, force: true });
    throw err;
  });
  return {
    url: (db) => server.url(db),
    stop: async () => {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

let server: Awaited<ReturnType<typeof acquireServer>>;
const DBS = ['fx_pos_a', 'fx_pos_b', 'fx_loc_a', 'fx_loc_b'];

async function withDb<T>(db: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: server.url(db) });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

before(async () => {
  server = await acquireServer();
  await withDb('postgres', async (c) => {
    for (const db of DBS) {
      await c.query(`DROP DATABASE IF EXISTS ${db}`);
      await c.query(`CREATE DATABASE ${db}`);
    }
  });
});

after(async () => {
  if (!server) return;
  if (process.env.SHARDCTL_TEST_URL) {
    await withDb('postgres', async (c) => {
      for (const db of DBS) await c.query(`DROP DATABASE IF EXISTS ${db}`);
    });
  }
  await server.stop();
});

// ---- helpers -------------------------------------------------------------------------------

async function count(c: pg.ClientBase, sql: string, params: unknown[] = []): Promise<number> {
  const r = await c.query<{ n: string }>(sql, params);
  return Number(r.rows[0]?.n);
}

/** Order-independent of physical layout: every row's text, sorted, hashed. */
async function checksums(c: pg.ClientBase, tables: readonly TableSpec[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const { name } of tables) {
    const r = await c.query<{ h: string }>(`SELECT md5(string_agg(t::text, E'\\n' ORDER BY t::text)) AS h FROM "${name}" t`);
    out[name] = r.rows[0]?.h ?? '';
  }
  return out;
}

async function tableCounts(c: pg.ClientBase, tables: readonly TableSpec[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const { name } of tables) out[name] = await count(c, `SELECT count(*) AS n FROM "${name}"`);
  return out;
}

/** Every FK in schema public: rows whose (non-null) key has no parent. */
async function orphanRows(c: pg.ClientBase): Promise<{ constraint: string; orphans: number }[]> {
  const fks = await c.query<{ conname: string; child: string; parent: string; ccols: string[]; pcols: string[] }>(`
    SELECT con.conname, ch.relname AS child, pa.relname AS parent,
           array(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, i)
                 JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.i) AS ccols,
           array(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, i)
                 JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.i) AS pcols
    FROM pg_constraint con
    JOIN pg_class ch ON ch.oid = con.conrelid
    JOIN pg_class pa ON pa.oid = con.confrelid
    WHERE con.contype = 'f' AND ch.relnamespace = 'public'::regnamespace
    ORDER BY 1`);
  const out: { constraint: string; orphans: number }[] = [];
  for (const fk of fks.rows) {
    const notNull = fk.ccols.map((col) => `c."${col}" IS NOT NULL`).join(' AND ');
    const match = fk.ccols.map((col, i) => `p."${fk.pcols[i]}" = c."${col}"`).join(' AND ');
    const n = await count(
      c,
      `SELECT count(*) AS n FROM "${fk.child}" c WHERE ${notNull} AND NOT EXISTS (SELECT 1 FROM "${fk.parent}" p WHERE ${match})`,
    );
    out.push({ constraint: fk.conname, orphans: n });
  }
  return out;
}

async function loadInto(db: string, kind: FixtureKind, scale: number, seed?: number) {
  return withDb(db, async (c) => {
    const started = performance.now();
    const res = await loadFixture(c, kind, { scale, seed });
    return { ...res, ms: performance.now() - started };
  });
}

// ---- static checks -------------------------------------------------------------------------

describe('fixture files', () => {
  test('tables.json entries are well-formed and parents-first', async () => {
    for (const kind of ['pos', 'location'] as const) {
      const tables = await fixtureTables(kind);
      const seen = new Set<string>();
      for (const t of tables) {
        const keys = Object.keys(t).sort().join(',');
        assert.ok(['name', 'key,name', 'name,reference', 'name,via', 'lat,lng,name', 'cell,name'].includes(keys), `${kind}.${t.name}: ${keys}`);
        if ('via' in t) {
          const m = /^(\w+) -> (\w+)\.(\w+)$/.exec(t.via);
          assert.ok(m, `${kind}.${t.name}: via ${t.via}`);
          assert.ok(seen.has(m[2]!), `${kind}.${t.name}: parent ${m[2]} listed later`);
        }
        seen.add(t.name);
      }
      const sql = await fixtureSchemaSql(kind);
      for (const t of tables) assert.match(sql, new RegExp(`CREATE TABLE ${t.name} \\(`), `${kind}: ${t.name} in DDL`);
    }
  });

  test('options are validated and row plans are deterministic', () => {
    assert.throws(() => expectedFixtureRows('pos', { scale: 0 }), /scale/);
    assert.throws(() => expectedFixtureRows('pos', { scale: Number.NaN }), /scale/);
    assert.throws(() => expectedFixtureRows('nope' as FixtureKind, { scale: 1 }), /unknown fixture kind/);
    assert.deepEqual(expectedFixtureRows('pos', { scale: 0.02 }), expectedFixtureRows('pos', { scale: 0.02 }));
    assert.equal(expectedFixtureRows('pos', { scale: 0.0001 }).restaurants, 1);
    assert.equal(expectedFixtureRows('pos', { scale: 0.02 }).restaurants, 20);
    assert.equal(expectedFixtureRows('location', { scale: 0.00001 }).profiles, 10);
    assert.equal(expectedFixtureRows('location', { scale: 0.005 }).profiles, 500);
    assert.notDeepEqual(expectedFixtureRows('pos', { scale: 0.02, seed: 1 }), expectedFixtureRows('pos', { scale: 0.02, seed: 2 }));
  });
});

// ---- POS -----------------------------------------------------------------------------------

const INDEX_DEFS = `SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1`;

describe('pos fixture', () => {
  let tables: TableSpec[];
  let indexesAsCreated: unknown[];
  before(async () => {
    tables = await fixtureTables('pos');
    for (const db of ['fx_pos_a', 'fx_pos_b']) await withDb(db, (c) => createFixtureSchema(c, 'pos'));
    indexesAsCreated = await withDb('fx_pos_a', async (c) => (await c.query(INDEX_DEFS)).rows);
  });

  test('schema: every configured table has a primary key; restaurant_id and via columns are indexed', async () => {
    await withDb('fx_pos_a', async (c) => {
      for (const t of tables) {
        assert.equal(await count(c, `SELECT count(*) AS n FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'p'`, [t.name]), 1, `${t.name} has a PK`);
        const col = 'reference' in t ? null : 'via' in t ? t.via.split(' ')[0]! : 'key' in t && t.key ? t.key : 'restaurant_id';
        if (!col) continue;
        const leading = await count(
          c,
          `SELECT count(*) AS n FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
           WHERE i.indrelid = $1::regclass AND a.attname = $2`,
          [t.name, col],
        );
        assert.ok(leading >= 1, `${t.name}.${col} leads an index`);
      }
    });
  });

  test('loads the expected rows, identically twice, with intact references', async () => {
    const expected = expectedFixtureRows('pos', { scale: POS_SCALE });
    const a = await loadInto('fx_pos_a', 'pos', POS_SCALE);
    const b = await loadInto('fx_pos_b', 'pos', POS_SCALE);
    assert.deepEqual(a.rows, expected);
    assert.deepEqual(b.rows, expected);
    assert.equal(expected.restaurants, 10);
    assert.ok(expected.orders! > 10 * 1000 && expected.order_items! > expected.orders!);

    const [ca, cb] = await Promise.all([
      withDb('fx_pos_a', async (c) => ({ counts: await tableCounts(c, tables), sums: await checksums(c, tables) })),
      withDb('fx_pos_b', async (c) => ({ counts: await tableCounts(c, tables), sums: await checksums(c, tables) })),
    ]);
    assert.deepEqual(ca.counts, expected);
    assert.deepEqual(cb.counts, expected);
    assert.deepEqual(ca.sums, cb.sums);

    await withDb('fx_pos_a', async (c) => {
      // The loader rebuilds secondary indexes around the COPY: same names, same definitions.
      assert.deepEqual((await c.query(INDEX_DEFS)).rows, indexesAsCreated);
      // FK triggers are skipped during the load, so check every constraint by hand.
      const orphans = await orphanRows(c);
      assert.ok(orphans.length >= 10, 'the schema has its foreign keys');
      assert.deepEqual(orphans.filter((o) => o.orphans > 0), []);
      // Every sharded table carries its restaurant (or reaches it through its parent).
      for (const t of tables) {
        if ('reference' in t || 'via' in t) continue;
        const col = 'key' in t && t.key ? t.key : 'restaurant_id';
        assert.equal(await count(c, `SELECT count(*) AS n FROM "${t.name}" WHERE "${col}" IS NULL`), 0, t.name);
      }
      // order_items has no restaurant_id: its product must still belong to the order's restaurant.
      assert.equal(
        await count(c, `SELECT count(*) AS n FROM order_items oi JOIN orders o ON o.id = oi.order_id
                        JOIN products p ON p.id = oi.product_id WHERE p.restaurant_id <> o.restaurant_id`),
        0,
      );
      // Order totals are consistent with their items.
      assert.equal(
        await count(c, `SELECT count(*) AS n FROM orders o
                        WHERE o.subtotal <> (SELECT coalesce(sum(line_total), 0) FROM order_items WHERE order_id = o.id)
                           OR o.total <> o.subtotal + o.tax + coalesce(o.tip, 0)`),
        0,
      );
      // Some NULLs, and text that needs COPY escaping, made it through.
      assert.ok((await count(c, `SELECT count(*) AS n FROM orders WHERE strpos(notes, chr(9)) > 0 OR strpos(notes, chr(10)) > 0`)) > 0);
      assert.ok((await count(c, `SELECT count(*) AS n FROM orders WHERE strpos(notes, chr(92)) > 0`)) > 0);
      for (const exact of ['split bill\tby seat', 'deliver to back door\nring twice', 'path C:\\temp\\receipt', 'rush\r\norder', '고수 빼주세요']) {
        assert.ok((await count(c, `SELECT count(*) AS n FROM orders WHERE notes = $1`, [exact])) > 0, JSON.stringify(exact));
      }
      assert.ok((await count(c, `SELECT count(*) AS n FROM orders WHERE user_id IS NULL`)) > 0);
      // Identity sequences were moved past the loaded ids.
      for (const t of ['restaurants', 'orders', 'order_items']) {
        const r = await c.query<{ next: string; max: string }>(
          `SELECT nextval(pg_get_serial_sequence($1, 'id')) AS next, (SELECT max(id) FROM "${t}") AS max`,
          [t],
        );
        assert.ok(BigInt(r.rows[0]!.next) > BigInt(r.rows[0]!.max), t);
      }
    });
  });
});

// ---- location ------------------------------------------------------------------------------

describe('location fixture', () => {
  let tables: TableSpec[];
  before(async () => {
    tables = await fixtureTables('location');
    for (const db of ['fx_loc_a', 'fx_loc_b']) await withDb(db, (c) => createFixtureSchema(c, 'location'));
  });

  test('loads the expected rows, identically twice and on reload', async () => {
    const expected = expectedFixtureRows('location', { scale: LOC_SCALE });
    assert.equal(expected.profiles, 100);
    const a = await loadInto('fx_loc_a', 'location', LOC_SCALE);
    const b = await loadInto('fx_loc_b', 'location', LOC_SCALE);
    assert.deepEqual(a.rows, expected);
    assert.deepEqual(b.rows, expected);
    const sumsA = await withDb('fx_loc_a', (c) => checksums(c, tables));
    const sumsB = await withDb('fx_loc_b', (c) => checksums(c, tables));
    assert.deepEqual(sumsA, sumsB);
    assert.deepEqual(await withDb('fx_loc_a', (c) => tableCounts(c, tables)), expected);

    // Another seed gives other data; reloading the first seed restores it exactly.
    await loadInto('fx_loc_b', 'location', LOC_SCALE, 2);
    const sumsSeed2 = await withDb('fx_loc_b', (c) => checksums(c, tables));
    assert.notEqual(sumsSeed2.locations, sumsA.locations);
    await loadInto('fx_loc_b', 'location', LOC_SCALE);
    assert.deepEqual(await withDb('fx_loc_b', (c) => checksums(c, tables)), sumsA);

    await withDb('fx_loc_a', async (c) => {
      assert.deepEqual((await orphanRows(c)).filter((o) => o.orphans > 0), []);
    });
  });

  test('points spread over several res-3 cells and include rows where the two H3 rules disagree', async () => {
    await withDb('fx_loc_a', async (c) => {
      const cells = new Map<string, number>();
      let disagree = 0;
      const points = await c.query<{ lat: number; lng: number }>(
        `SELECT home_lat AS lat, home_lng AS lng FROM profiles UNION ALL SELECT latitude, longitude FROM locations`,
      );
      for (const { lat, lng } of points.rows) {
        const cell = cellToParent(latLngToCell(lat, lng, 12), 3);
        cells.set(cell, (cells.get(cell) ?? 0) + 1);
        if (latLngToCell(lat, lng, 3) !== cell) disagree++;
      }
      assert.ok(cells.size >= 4, `res-3 cells with data: ${cells.size}`);
      const sizes = [...cells.values()].sort((x, y) => y - x);
      assert.ok(sizes[0]! > 2 * sizes[sizes.length - 1]!, 'some cells hold more than others');
      assert.ok(disagree >= 1, 'a point where latLngToCell(p, 3) differs from the parent of the res-12 index');

      const locDisagree = (await c.query<{ lat: number; lng: number }>(`SELECT latitude AS lat, longitude AS lng FROM locations`))
        .rows.filter(({ lat, lng }) => latLngToCell(lat, lng, 3) !== cellToParent(latLngToCell(lat, lng, 12), 3)).length;
      assert.ok(locDisagree >= 1, 'locations has such a row');

      // bumps.h3_index is the res-12 index of the bump's own point.
      const bumps = await c.query<{ lat: number; lng: number; h: string }>(`SELECT latitude AS lat, longitude AS lng, h3_index::text AS h FROM bumps`);
      assert.ok(bumps.rows.length > 0);
      for (const { lat, lng, h } of bumps.rows) assert.equal(h, BigInt(`0x${latLngToCell(lat, lng, 12)}`).toString());
      const rooms = await c.query<{ h: string }>(`SELECT h3_cell::text AS h FROM chat_rooms`);
      const roomCells = new Set<string>();
      for (const { h } of rooms.rows) {
        const hex = BigInt(h).toString(16);
        assert.equal(getResolution(hex), 12);
        roomCells.add(cellToParent(hex, 3));
      }
      assert.ok(roomCells.size >= 2, `chat room res-3 cells: ${roomCells.size}`);
    });
  });
});
