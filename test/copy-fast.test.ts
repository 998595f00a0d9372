import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { stageFleet, type Stage } from '../harness/demo/stage.js';
import { migrate } from '../src/migrate/index.js';
import type { MigrateEvent } from '../src/migrate/events.js';
import { copyFormat, serverTypes, type ServerTypes } from '../src/tables/copy-format.js';
import { rowHashFor, rowHashSql, type ColumnHash } from '../src/tables/row-hash.js';
import { verify } from '../src/verify/index.js';
import { health } from '../src/health/index.js';
import { rowHashes } from '../src/verify/hashes.js';
import { loadModel } from '../src/tables/model.js';
import { withClient, type Endpoint } from '../src/db/connect.js';
import { sourceEndpoint, shardEndpoint } from '../src/db/endpoints.js';
import type { TableModel } from '../src/tables/model.js';
import { assertExact } from './helpers/exact.js';
import { resetShards, sql } from './helpers/fleet.js';
import { buildDeferredIndexes, FEW_BATCHES } from '../src/migrate/indexes-after.js';
import pg from 'pg';
import pLimit from 'p-limit';
import { runSessions } from '../src/db/sessions.js';

const types = (major: number, cols: Record<string, [number, string]>, encoding = 'UTF8'): ServerTypes => ({
  major,
  encoding,
  tables: new Map([['public.t', new Map(Object.entries(cols).map(([k, [oid, type]]) => [k, { oid, type, send: `${type}_send` }]))]]),
});
const table = { name: 'public.t', columns: ['a', 'b'] } as unknown as TableModel;

describe('binary COPY only where the column types are proven identical', () => {
  it('identical built-in types go binary; another type, typmod, user type or major version stays text', () => {
    const same = types(16, { a: [20, 'bigint'], b: [1184, 'timestamp with time zone'] });
    assert.equal(copyFormat(table, same, same), 'binary');
    assert.equal(copyFormat(table, same, types(16, { a: [23, 'integer'], b: [1184, 'timestamp with time zone'] })), 'text');
    const n1 = types(16, { a: [20, 'bigint'], b: [1700, 'numeric(12,2)'] });
    assert.equal(copyFormat(table, n1, types(16, { a: [20, 'bigint'], b: [1700, 'numeric(14,2)'] })), 'text');
    const enumCol = types(16, { a: [20, 'bigint'], b: [16500, 'mood'] });
    assert.equal(copyFormat(table, enumCol, enumCol), 'text', 'a user type: its OID means nothing on another server');
    assert.equal(copyFormat(table, same, { ...same, major: 15 }), 'text');
    assert.equal(copyFormat(table, same, types(16, { a: [20, 'bigint'] })), 'text', 'a column missing on one side');
    const reg = types(16, { a: [20, 'bigint'], b: [2205, 'regclass'] });
    assert.equal(copyFormat(table, reg, reg), 'text', 'a regclass is an OID in binary: another object on another server');
  });

  it('the cheap row hash only where every server gave the same probe; the binary form only where every pair copies binary', () => {
    const p = (t: ServerTypes, probe?: string): ServerTypes => ({ ...t, probe });
    const same = types(16, { a: [20, 'bigint'], b: [1184, 'timestamp with time zone'] });
    const typed = (b: ColumnHash) => ({ form: 'typed', fn: 'pg', columns: new Map([['a', { kind: 'int8' }], ['b', b]]) });
    assert.deepEqual(rowHashFor(table, p(same, '7'), [p(same, '7'), p(same, '7')]), typed({ kind: 'send', fn: 'timestamp with time zone_send' }));
    const texts = types(16, { a: [20, 'bigint'], b: [25, 'text'] });
    assert.deepEqual(rowHashFor(table, p(texts, '7'), [p(texts, '7')]), typed({ kind: 'text' }));
    const latin = types(16, { a: [20, 'bigint'], b: [25, 'text'] }, 'LATIN1');
    assert.deepEqual(rowHashFor(table, p(texts, '7'), [p(latin, '7')]), typed({ kind: 'send', fn: 'text_send' }), 'text stored in two encodings: its send form');
    assert.deepEqual(rowHashFor(table, p(same, '7'), [p(same, '7'), p(same, '8')]), { form: 'binary', fn: 'md5' }, 'one server hashes otherwise (byte order)');
    assert.deepEqual(rowHashFor(table, p(same), [p(same)]), { form: 'binary', fn: 'md5' }, 'no probe: a server without the function');
    const int = types(16, { a: [23, 'integer'], b: [1184, 'timestamp with time zone'] });
    assert.deepEqual(rowHashFor(table, p(same, '7'), [p(same, '7'), p(int, '7')]), { form: 'typed', fn: 'pg', columns: new Map([['a', { kind: 'output' }], ['b', { kind: 'send', fn: 'timestamp with time zone_send' }]]) }, 'one shard has another type: that column hashes its text');
    assert.deepEqual(rowHashFor(table, p(same), [p(int)]), { form: 'text', fn: 'md5' });
    const arr = types(16, { a: [20, 'bigint'], b: [1007, 'integer[]'] });
    assert.deepEqual(rowHashFor(table, p(arr, '7'), [p(arr, '7')]), typed({ kind: 'output' }), 'an array hashes its text');
    assert.deepEqual(rowHashFor(table, p(arr), [p(arr)]), { form: 'text', fn: 'md5' }, 'and with md5, the whole row');
  });
});

describe('migrate: binary COPY and secondary indexes built after the initial load (pgbench fixture, no-PK history)', () => {
  let stage: Stage;
  before(async () => {
    stage = await stageFleet({ kind: 'pgbench', shards: 2, scale: 0.4 });
    // a user-defined type in the history table (text COPY) and a secondary index to defer
    for (const url of [stage.config.source, ...stage.config.shards.map((s) => s.primary)]) {
      await sql(url, `CREATE TYPE kind AS ENUM ('deposit', 'withdrawal')`);
      await sql(url, `ALTER TABLE pgbench_history ADD COLUMN kind kind`);
      await sql(url, 'CREATE INDEX pgbench_history_aid ON pgbench_history (aid)');
      await sql(url, 'CREATE INDEX pgbench_accounts_bid ON pgbench_accounts (bid)');
    }
    await sql(stage.config.source, `UPDATE pgbench_history SET kind = CASE WHEN delta < 0 THEN 'withdrawal'::kind ELSE 'deposit'::kind END`);
  });
  after(() => stage?.stop());

  const indexesOn = async (url: string) =>
    (await sql(url, `SELECT indexname FROM pg_indexes WHERE indexname IN ('pgbench_history_aid', 'pgbench_accounts_bid') ORDER BY 1`)).map((r) => r.indexname);

  it('a run interrupted after the data, before the deferred indexes, is finished by the next run: exact, indexes back', async () => {
    const events: MigrateEvent[] = [];
    const ac = new AbortController();
    let expected = Infinity;
    let batches = 0;
    await assert.rejects(
      migrate(stage.config, {
        concurrency: 1, // the default defers the indexes: no flag
        signal: ac.signal,
        onEvent: (e) => {
          events.push(e);
          if (e.type === 'start') expected = e.shards.filter((s) => s.units > 0).length; // one batch per shard at the default size
          // the last batch is journaled: the data is in, the indexes not yet built
          if (e.type === 'batch' && ++batches === expected) ac.abort();
        },
      }),
      /interrupted/,
    );
    assert.equal(batches, expected);
    const deferred = events.filter((e) => e.type === 'indexes-deferred');
    assert.equal(deferred.length, 2, 'both shards had empty tables with secondary indexes');
    for (const s of stage.config.shards) assert.deepEqual(await indexesOn(s.primary), [], `${s.id}: indexes dropped, not built yet`);
    const listed = await sql(stage.config.catalog, 'SELECT shard, index_name FROM shardctl.deferred_indexes ORDER BY 1, 2');
    assert.equal(listed.length, 4);
    // health says so, per shard, with the way out
    const pending = (await health(stage.config)).catalog!.checks.filter((c) => /initial load/.test(c.message));
    assert.deepEqual(pending.map((c) => [c.status, c.message]), stage.config.shards.map((s) => [
      'warning', `2 secondary indexes that migrate dropped for the initial load on shard ${s.id} are not built yet (an interrupted run): the next \`shardctl migrate\` builds them`,
    ]));

    // binary where proven (every pgbench column is a built-in type), text for the table with the enum
    const formats = new Map(events.filter((e) => e.type === 'table').map((e) => [(e as { table: string }).table, (e as { format?: string }).format]));
    assert.equal(formats.get('public.pgbench_accounts'), 'binary');
    assert.equal(formats.get('public.pgbench_history'), 'text');

    // the next run, keeping indexes: nothing left to copy, the indexes are built and forgotten
    const built: MigrateEvent[] = [];
    const r = await migrate(stage.config, { indexesAfter: false, onEvent: (e) => built.push(e) });
    assert.equal(r.ok, true, JSON.stringify(r.errors));
    assert.equal(built.filter((e) => e.type === 'indexes').length, 2);
    for (const s of stage.config.shards) assert.deepEqual(await indexesOn(s.primary), ['pgbench_accounts_bid', 'pgbench_history_aid']);
    assert.equal((await sql(stage.config.catalog, 'SELECT count(*)::int AS n FROM shardctl.deferred_indexes'))[0].n, 0);
    assert.equal((await health(stage.config)).catalog!.checks.filter((c) => /initial load/.test(c.message)).length, 0);
    await assertExact(stage.config);
  });

  it('tables that hold rows keep their indexes (a --resync defers nothing)', async () => {
    const events: MigrateEvent[] = [];
    const r = await migrate(stage.config, { resync: true, onEvent: (e) => events.push(e) });
    assert.equal(r.ok, true, JSON.stringify(r.errors));
    assert.equal(events.filter((e) => e.type === 'indexes-deferred').length, 0);
    for (const s of stage.config.shards) assert.deepEqual(await indexesOn(s.primary), ['pgbench_accounts_bid', 'pgbench_history_aid']);
    await assertExact(stage.config);
  });

  it('the typed row hash tells apart values that are equal but not identical, and which column holds a NULL', async () => {
    const url = stage.config.source;
    await sql(url, `CREATE TABLE hash_cases (k int, i8 bigint, n numeric, f float8, ts timestamp, iv interval, t text, x int, y int, arr int[], kind kind)`);
    // pairs (k, k + 1) that differ in one way only
    await sql(url, `INSERT INTO hash_cases (k, i8) VALUES (1, 1), (2, 4294967296);            -- int8 hashes fold these alike
                    INSERT INTO hash_cases (k, n) VALUES (3, 1.5), (4, 1.50);                 -- equal numerics, two scales
                    INSERT INTO hash_cases (k, f) VALUES (5, '0'), (6, '-0');
                    INSERT INTO hash_cases (k, ts) VALUES (7, '2000-01-01 00:00:00.000001'), (8, '2000-01-01 01:11:34.967296');
                    INSERT INTO hash_cases (k, iv) VALUES (9, '1 day'), (10, '24 hours');
                    INSERT INTO hash_cases (k, t) VALUES (11, ''), (12, NULL);
                    INSERT INTO hash_cases (k, x, y) VALUES (13, 5, NULL), (14, NULL, 5), (15, 5, 6), (16, 6, 5);
                    INSERT INTO hash_cases (k, arr) VALUES (17, '{1,2}'), (18, '[0:1]={1,2}'), (19, '{}'), (20, '{NULL}');
                    INSERT INTO hash_cases (k, kind) VALUES (21, 'deposit'), (22, 'withdrawal')`);
    try {
      const columns = ['arr', 'f', 'i8', 'iv', 'kind', 'n', 't', 'ts', 'x', 'y'];
      const types = await withClient(sourceEndpoint(stage.config), (c) => serverTypes(c, ['public.hash_cases']));
      const h = rowHashFor({ name: 'public.hash_cases', columns } as unknown as TableModel, types, [types]);
      assert.equal(h.form, 'typed');
      const kinds = (h as { columns: ReadonlyMap<string, ColumnHash> }).columns;
      assert.deepEqual([kinds.get('arr'), kinds.get('kind')], [{ kind: 'output' }, { kind: 'output' }], 'an array, a user type: their text');
      const rows = await sql(url, `SELECT k, ${rowHashSql(columns, 't0', h)}::text AS h, hash_record_extended(ROW(${columns.map((c) => `t0.${c}`).join(', ')}), 0)::text AS eq
                                   FROM hash_cases t0 ORDER BY k`);
      // the cases are real: an equality-based hash gives both rows of these pairs one value
      for (const k of [1, 3, 5, 7, 9, 17]) assert.equal(rows[k - 1].eq, rows[k].eq, `pair ${k}`);
      assert.equal(new Set(rows.map((r) => r.h)).size, rows.length, JSON.stringify(rows));
    } finally {
      await sql(url, 'DROP TABLE hash_cases');
    }
  });

  it('verify hashes rows the cheap way where every server agrees, and still sees values swapped between two rows', async () => {
    const config = stage.config;
    const model = await withClient(sourceEndpoint(config), (c) => loadModel(config, c));
    const servers: [string, Endpoint][] = [['source', sourceEndpoint(config)], ...config.shards.map((s) => [s.id, shardEndpoint(config, s.id)] as [string, Endpoint])];
    const hashes = await rowHashes(servers, model.tables);
    const int4 = { kind: 'int4' };
    assert.deepEqual(hashes.get('public.pgbench_accounts'), { form: 'typed', fn: 'pg', columns: new Map([['abalance', int4], ['aid', int4], ['bid', int4], ['filler', { kind: 'bpchar' }]]) });
    assert.equal(hashes.get('public.pgbench_history')?.form, 'typed');
    assert.deepEqual((hashes.get('public.pgbench_history') as { columns: ReadonlyMap<string, ColumnHash> }).columns.get('kind'), { kind: 'output' }, 'the enum column: its text');

    // Two rows of one branch trade a value: every column holds the same values as before, only their
    // pairing within the rows changed. A row hash that combined per-column hashes linearly (as
    // hash_record_extended does) would sum to the same checksum.
    const shard = config.shards[0]!;
    const [a, b] = await sql(shard.primary, 'SELECT aid, bid FROM pgbench_accounts ORDER BY aid LIMIT 2');
    assert.equal(a.bid, b.bid);
    for (const url of [config.source, shard.primary]) await sql(url, `UPDATE pgbench_accounts SET abalance = aid WHERE aid IN (${a.aid}, ${b.aid})`);
    // history has no key: two rows of the branch told apart by their (here unique) mtime
    const [h1, h2] = await sql(shard.primary, `SELECT mtime::text AS mtime, delta FROM pgbench_history WHERE bid = ${a.bid}
       AND mtime IN (SELECT mtime FROM pgbench_history GROUP BY mtime HAVING count(*) = 1) ORDER BY delta LIMIT 2`);
    assert.notEqual(h1.delta, h2.delta);
    const before = await verify(config);
    assert.equal(before.ok, true, JSON.stringify(before.findings.slice(0, 3)));
    // each row takes the other's value (the subquery reads the rows as they were before the UPDATE)
    const swap = async () => {
      await sql(shard.primary, `UPDATE pgbench_accounts t SET abalance = (SELECT abalance FROM pgbench_accounts o WHERE o.aid = ${a.aid} + ${b.aid} - t.aid) WHERE aid IN (${a.aid}, ${b.aid})`);
      await sql(shard.primary, `UPDATE pgbench_history t SET delta = (SELECT delta FROM pgbench_history o WHERE o.mtime::text = CASE t.mtime::text WHEN '${h1.mtime}' THEN '${h2.mtime}' ELSE '${h1.mtime}' END)
                                 WHERE mtime::text IN ('${h1.mtime}', '${h2.mtime}')`);
    };
    await swap();
    const r = await verify(config);
    const found = r.findings.map((f) => `${f.kind} ${'table' in f ? f.table : ''} ${'unit' in f ? f.unit : ''}`).sort();
    assert.deepEqual(found, [`mismatch public.pgbench_accounts ${a.bid}`, `mismatch public.pgbench_history ${a.bid}`]);
    await swap(); // twice: back as it was
    assert.equal((await verify(config)).ok, true);
  });

  it('a shard loaded in many batches keeps the index its batches select by; --no-indexes-after keeps every index', async () => {
    const config = stage.config;
    // 24 more branches of a few accounts each: one unit per batch (batchRows 1) gives each shard a dozen batches
    await sql(config.source, 'INSERT INTO pgbench_branches (bid, bbalance) SELECT b, 0 FROM generate_series(101, 124) b');
    await sql(config.source, `INSERT INTO pgbench_accounts (aid, bid, abalance, filler) SELECT 1000000 + b * 10 + i, b, 0, '' FROM generate_series(101, 124) b, generate_series(1, 3) i`);
    await resetShards(config);
    const events: MigrateEvent[] = [];
    const r = await migrate(config, { batchRows: 1, onEvent: (e) => events.push(e) });
    assert.equal(r.ok, true, JSON.stringify(r.errors));
    for (const s of config.shards) {
      const batches = events.filter((e) => e.type === 'batch' && e.shard === s.id).length;
      const deferred = events.find((e) => e.type === 'indexes-deferred' && e.shard === s.id) as { indexes: number } | undefined;
      // pgbench_accounts_bid leads with the route column (bid): kept where more than FEW_BATCHES batches read it
      assert.equal(deferred?.indexes, batches > FEW_BATCHES ? 1 : 2, `${s.id}: ${batches} batches`);
      assert.deepEqual(await indexesOn(s.primary), ['pgbench_accounts_bid', 'pgbench_history_aid']);
    }
    assert.ok(config.shards.some((s) => events.filter((e) => e.type === 'batch' && e.shard === s.id).length > FEW_BATCHES), 'a shard loaded in many batches');
    await assertExact(config);

    await resetShards(config);
    const kept: MigrateEvent[] = [];
    const k = await migrate(config, { indexesAfter: false, onEvent: (e) => kept.push(e) });
    assert.equal(k.ok, true, JSON.stringify(k.errors));
    assert.equal(kept.filter((e) => e.type === 'indexes-deferred' || e.type === 'indexes').length, 0);
    await assertExact(config);
  });

  it('the catalog forgets built indexes one statement at a time on its session (pg queues concurrent queries, pg 9 refuses them)', async () => {
    const config = stage.config;
    await resetShards(config);
    // a run stopped after its data, before the builds: every shard lists its deferred indexes
    const ac = new AbortController();
    let expected = Infinity;
    let batches = 0;
    await assert.rejects(
      migrate(config, {
        concurrency: 1,
        signal: ac.signal,
        onEvent: (e) => {
          if (e.type === 'start') expected = e.shards.filter((s) => s.units > 0).length;
          if (e.type === 'batch' && ++batches === expected) ac.abort();
        },
      }),
      /interrupted/,
    );
    const listed = (await sql(config.catalog, 'SELECT count(*)::int AS n FROM shardctl.deferred_indexes'))[0].n as number;
    assert.ok(listed >= 4, `${listed} deferred indexes listed`);
    // the catalog session, watched: how many of its queries are in flight at once (each held 30 ms
    // longer, so overlapping ones would show)
    const client = new pg.Client({ connectionString: config.catalog });
    await client.connect();
    let inFlight = 0;
    let most = 0;
    const watched = new Proxy(client, {
      get(target, prop, receiver) {
        if (prop !== 'query') return Reflect.get(target, prop, receiver);
        return async (...args: unknown[]) => {
          most = Math.max(most, ++inFlight);
          try {
            const r = await (target.query as (...a: unknown[]) => Promise<unknown>)(...args);
            await new Promise((ok) => setTimeout(ok, 30));
            return r;
          } finally {
            inFlight--;
          }
        };
      },
    });
    try {
      const problems = await buildDeferredIndexes(config, watched, pLimit(2), () => undefined);
      assert.deepEqual(problems, []);
    } finally {
      await client.end();
    }
    assert.equal(most, 1, 'at most one catalog query at a time');
    assert.equal((await sql(config.catalog, 'SELECT count(*)::int AS n FROM shardctl.deferred_indexes'))[0].n, 0);
    for (const s of config.shards) assert.deepEqual(await indexesOn(s.primary), ['pgbench_accounts_bid', 'pgbench_history_aid']);
  });

  it('a run opens one session per shard for its checks, index DDL and guards, besides one per batch', async () => {
    const config = stage.config;
    await resetShards(config);
    // pg_stat_database counts each session as it ends; the session that reads the count ends after
    const sessions = async (url: string) => Number((await sql(url, 'SELECT sum(sessions) AS n FROM pg_stat_database'))[0].n);
    const before = await Promise.all(config.shards.map((s) => sessions(s.primary)));
    const events: MigrateEvent[] = [];
    const r = await migrate(config, { onEvent: (e) => events.push(e) });
    assert.equal(r.ok, true, JSON.stringify(r.errors));
    assert.ok(events.some((e) => e.type === 'indexes'), 'indexes deferred and built');
    const after = await Promise.all(config.shards.map((s) => sessions(s.primary)));
    config.shards.forEach((s, i) => {
      const batches = events.filter((e) => e.type === 'batch' && e.shard === s.id).length;
      assert.equal(after[i]! - before[i]! - 1, 1 + batches, `${s.id}: sessions opened by a run of ${batches} batches`);
    });
    await assertExact(config);
  });

  it('run sessions: one session per server, uses one at a time in call order; a failed use closes it and names the server', async () => {
    const ep = shardEndpoint(stage.config, stage.config.shards[0]!.id);
    const sessions = runSessions();
    try {
      const pid = (c: pg.Client) => c.query('SELECT pg_backend_pid() AS p').then((r) => r.rows[0].p as number);
      const order: string[] = [];
      const slow = (name: string) => async (c: pg.Client) => {
        order.push(`${name} start`);
        await c.query('SELECT pg_sleep(0.05)');
        order.push(`${name} end`);
        return pid(c);
      };
      const [a, b] = await Promise.all([sessions.use(ep, slow('a')), sessions.use(ep, slow('b'))]);
      assert.equal(a, b, 'the same session');
      assert.deepEqual(order, ['a start', 'a end', 'b start', 'b end']);
      await assert.rejects(
        sessions.use(ep, async (c) => {
          await c.query('BEGIN');
          await c.query('SELECT 1 / 0');
        }),
        (e: Error) => e.message.includes(ep.label) && e.message.includes('division by zero'),
      );
      const fresh = await sessions.use(ep, async (c) => {
        // a new session, not the one left in an aborted transaction
        await c.query('SELECT 1');
        return pid(c);
      });
      assert.notEqual(fresh, a);
      const gone = await sql(stage.config.shards[0]!.primary, 'SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1', [a]);
      assert.equal(gone[0].n, 0, 'the failed session was closed');
    } finally {
      await sessions.close();
    }
  });
});
