import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../src/config/load.js';
import type { Config } from '../src/config/types.js';
import { stageFleet, type Stage } from '../harness/demo/stage.js';
import { topologyRouter } from '../src/routing/router.js';
import { runCli } from './helpers/cli.js';
import { assertExact } from './helpers/exact.js';
import { sql } from './helpers/fleet.js';

/** Rows of every configured table on every shard. */
async function shardRows(config: Config): Promise<number> {
  let n = 0;
  for (const s of config.shards) {
    for (const t of config.tables) n += Number((await sql(s.primary, `SELECT count(*) AS n FROM "${t.schema}"."${t.name}"`))[0].n);
  }
  return n;
}

/** Per store and table, the source's row count must be on the store's shard (and 0 elsewhere, which assertExact proves). */
const PER_STORE: Record<string, string> = {
  staff: 'SELECT store_id::text AS u, count(*) AS n FROM staff GROUP BY 1',
  customer: 'SELECT store_id::text AS u, count(*) AS n FROM customer GROUP BY 1',
  inventory: 'SELECT store_id::text AS u, count(*) AS n FROM inventory GROUP BY 1',
  rental: 'SELECT i.store_id::text AS u, count(*) AS n FROM rental r JOIN inventory i USING (inventory_id) GROUP BY 1',
  payment: `SELECT i.store_id::text AS u, count(*) AS n, sum(p.amount)::text AS amount
              FROM payment p JOIN rental r USING (rental_id) JOIN inventory i USING (inventory_id) GROUP BY 1`,
};

async function assertPerStore(config: Config): Promise<void> {
  const router = topologyRouter(config);
  for (const [table, q] of Object.entries(PER_STORE)) {
    const want = await sql(config.source, q);
    assert.ok(want.length >= 2);
    for (const w of want) {
      const shard = config.shards.find((s) => s.id === router.shardFor(w.u))!;
      const got = (await sql(shard.primary, q)).find((g) => g.u === w.u);
      assert.deepEqual(got, w, `store ${w.u}, ${table}: ${shard.id} holds what the source has`);
    }
  }
}

/** The crossing rows, counted independently of shardctl: the child's store differs from the parent's. */
const CROSSING: Record<string, string> = {
  rental_customer_id_fkey: `SELECT count(*) AS n FROM rental r JOIN inventory i USING (inventory_id) JOIN customer c USING (customer_id) WHERE c.store_id <> i.store_id`,
  rental_staff_id_fkey: `SELECT count(*) AS n FROM rental r JOIN inventory i USING (inventory_id) JOIN staff s ON s.staff_id = r.staff_id WHERE s.store_id <> i.store_id`,
  payment_p2022_01_customer_id_fkey: paymentCrossing('payment_p2022_01', 'customer', 'customer_id'),
  payment_p2022_01_staff_id_fkey: paymentCrossing('payment_p2022_01', 'staff', 'staff_id'),
  payment_p2022_02_customer_id_fkey: paymentCrossing('payment_p2022_02', 'customer', 'customer_id'),
};

function paymentCrossing(partition: string, parent: string, col: string): string {
  return `SELECT count(*) AS n FROM ${partition} p JOIN rental r USING (rental_id) JOIN inventory i USING (inventory_id)
            JOIN ${parent} x ON x.${col} = p.${col} WHERE x.store_id <> i.store_id`;
}

describe('schemas: film-rental shop (cross-store keys, partitioned payments)', () => {
  let stage: Stage;
  let cfg: string;
  before(async () => {
    stage = await stageFleet({ kind: 'rental', shards: 3, scale: 0.3 });
    cfg = stage.configPath;
  });
  after(() => stage?.stop());

  it('plan analyses every foreign key, partitions included, with the crossing rows counted on the source', async () => {
    const r = runCli(['plan', '--config', cfg, '--json']);
    assert.equal(r.status, 0, r.stderr);
    const keys: { key: string; table: string; partition?: string; verdict: string; rows: number; blocking: boolean; waysForward: string[] }[] =
      JSON.parse(r.stdout).foreignKeys;
    const by = new Map(keys.map((k) => [k.key, k]));
    for (const [key, q] of Object.entries(CROSSING)) {
      const want = Number((await sql(stage.config.source, q))[0].n);
      assert.ok(want > 0, `${key}: the fixture has crossing rows`);
      assert.equal(by.get(key)?.verdict, 'crossing', key);
      assert.equal(by.get(key)?.rows, want, `${key}: crossing rows`);
      assert.equal(by.get(key)?.blocking, true);
      assert.ok(by.get(key)!.waysForward.some((w) => w.includes('crossingKeys')));
    }
    assert.equal(by.get('payment_p2022_01_customer_id_fkey')?.partition, 'public.payment_p2022_01');
    assert.equal(by.get('payment_p2022_01_customer_id_fkey')?.table, 'public.payment');
    assert.equal(by.get('rental_inventory_id_fkey')?.verdict, 'via');
    for (const k of ['payment_p2022_01_rental_id_fkey', 'payment_p2022_03_rental_id_fkey', 'staff_store_id_fkey', 'customer_store_id_fkey', 'inventory_store_id_fkey']) {
      assert.equal(by.get(k)?.verdict, 'inside', k);
    }
    assert.equal(by.get('inventory_film_id_fkey')?.verdict, 'reference');
    assert.equal(keys.length, 14, 'every declared key, once (no per-partition clones)');
    const zero = runCli(['plan', '--config', cfg, '--top', '0']);
    assert.equal(zero.status, 2, zero.stderr);
    assert.match(zero.stderr, /--top must be a whole number of at least 1, got "0"/);
    assert.doesNotMatch(zero.stderr, /internal error/);
    const human = runCli(['plan', '--config', cfg]);
    assert.match(human.stdout, /rental_staff_id_fkey\s+public\.rental\s+public\.staff\s+CROSSES units\s+\d+/);
    assert.match(human.stdout, /migrate refuses until these 5 keys are dealt with/);
  });

  it('migrate refuses before writing anything, naming the key, the tables and the rows (exit 3)', async () => {
    const r = runCli(['migrate', '--config', cfg]);
    assert.equal(r.status, 3, r.stderr);
    assert.match(r.stderr, /5 foreign keys would break on the shards; nothing was written/);
    const n = Number((await sql(stage.config.source, CROSSING.rental_customer_id_fkey!))[0].n);
    assert.match(r.stderr, new RegExp(`table public\\.rental: foreign key rental_customer_id_fkey \\(customer_id\\) → public\\.customer: ${n} row\\(s\\) in \\d+ unit\\(s\\)`));
    assert.match(r.stderr, /table public\.payment \(partition public\.payment_p2022_01\): foreign key payment_p2022_01_staff_id_fkey/);
    assert.match(r.stderr, /way forward: accept it: add rental_staff_id_fkey to crossingKeys of table public\.rental/);
    assert.doesNotMatch(r.stderr, /internal error|at .*\.js:\d+/);
    assert.equal(await shardRows(stage.config), 0, 'nothing on any shard');
  });

  it('the way forward: crossingKeys accepted and dropped on the shards; migrate, verify and rebalance exact per store', async () => {
    const text = readFileSync(cfg, 'utf8')
      .replace('  - name: rental\n', '  - name: rental\n    crossingKeys: [ rental_customer_id_fkey, rental_staff_id_fkey ]\n')
      .replace('  - name: payment\n', '  - name: payment\n    crossingKeys: [ payment_p2022_01_customer_id_fkey, payment_p2022_01_staff_id_fkey, payment_p2022_02_customer_id_fkey ]\n');
    writeFileSync(cfg, text);
    const config = loadConfig(cfg);
    assert.equal(config.tables.find((t) => t.name === 'payment')!.crossingKeys.length, 3);
    const plan = JSON.parse(runCli(['plan', '--config', cfg, '--json']).stdout);
    assert.equal(plan.foreignKeys.filter((k: { blocking: boolean }) => k.blocking).length, 0);

    // the shards still have the keys: refused, with the statement that drops each
    const refused = runCli(['migrate', '--config', cfg]);
    assert.equal(refused.status, 3, refused.stderr);
    assert.match(refused.stderr, /shard s0: table public\.payment_p2022_01 has foreign key payment_p2022_01_staff_id_fkey, which .* accepts as crossing units/);
    assert.match(refused.stderr, /ALTER TABLE public\.rental DROP CONSTRAINT "rental_customer_id_fkey"/);
    assert.equal(await shardRows(config), 0);

    for (const s of config.shards) {
      await sql(s.primary, `ALTER TABLE rental DROP CONSTRAINT rental_customer_id_fkey, DROP CONSTRAINT rental_staff_id_fkey;
        ALTER TABLE payment_p2022_01 DROP CONSTRAINT payment_p2022_01_customer_id_fkey, DROP CONSTRAINT payment_p2022_01_staff_id_fkey;
        ALTER TABLE payment_p2022_02 DROP CONSTRAINT payment_p2022_02_customer_id_fkey`);
    }
    const m = runCli(['migrate', '--config', cfg]);
    assert.equal(m.status, 0, m.stderr);
    const v = runCli(['verify', '--config', cfg]);
    assert.equal(v.status, 0, v.stdout + v.stderr);
    await assertExact(config);
    await assertPerStore(config);
    // every partition's rows are in that partition on the shards too
    for (const s of config.shards) {
      const misfiled = await sql(s.primary, `SELECT count(*) AS n FROM payment_p2022_02 WHERE payment_date < '2022-02-01' OR payment_date >= '2022-03-01'`);
      assert.equal(Number(misfiled[0].n), 0);
    }

    // move a store to another shard: still exact per store
    const router = topologyRouter(config);
    const store = '2';
    const to = config.shards.map((s) => s.id).find((s) => s !== router.shardFor(store))!;
    const pin = runCli(['pin', store, to, '--apply', '--config', cfg]);
    assert.equal(pin.status, 0, pin.stderr);
    const moved = loadConfig(cfg);
    assert.equal(topologyRouter(moved).shardFor(store), to);
    assert.equal(runCli(['verify', '--config', cfg]).status, 0);
    await assertExact(moved);
    await assertPerStore(moved);
  });

  it('a reference table with a foreign key to a sharded table is a configuration error naming both (exit 2)', () => {
    const text = readFileSync(cfg, 'utf8').replace('  - name: staff\n', '  - name: staff\n    reference: true\n');
    assert.notEqual(text, readFileSync(cfg, 'utf8'));
    const bad = `${stage.fleet.dir}/reference-staff.yaml`;
    writeFileSync(bad, text);
    for (const cmd of [['plan'], ['migrate'], ['verify']]) {
      const r = runCli([...cmd, '--config', bad]);
      assert.equal(r.status, 2, `${cmd}: ${r.stderr}`);
      assert.match(r.stderr, /reference table public\.staff has foreign key staff_store_id_fkey on public\.staff to sharded table public\.store/);
      assert.doesNotMatch(r.stderr, /internal error|This is a bug/);
    }
  });

  it('add-shard creates the partitioned table with its partitions and their own keys, less the accepted ones; the move is exact', async () => {
    const server = (await stage.fleet.addShard()).primary;
    const r = runCli(['add-shard', '--config', cfg, '--id', 's3', '--primary', server.url(), '--apply']);
    assert.equal(r.status, 0, r.stderr);
    const keys = await sql(server.url(), `SELECT conrelid::regclass::text AS t, conname FROM pg_constraint WHERE contype = 'f' AND conparentid = 0 ORDER BY 2`);
    const names = keys.map((k) => k.conname);
    assert.ok(names.includes('payment_p2022_01_rental_id_fkey') && names.includes('payment_p2022_03_rental_id_fkey'));
    assert.ok(!names.some((n) => /customer_id_fkey|staff_id_fkey/.test(n) && /rental|payment/.test(n)), names.join(' '));
    const parts = await sql(server.url(), `SELECT inhrelid::regclass::text AS p FROM pg_inherits WHERE inhparent = 'payment'::regclass ORDER BY 1`);
    assert.deepEqual(parts.map((x) => x.p), ['payment_p2022_01', 'payment_p2022_02', 'payment_p2022_03']);
    const config = loadConfig(cfg);
    assert.equal(runCli(['verify', '--config', cfg]).status, 0);
    await assertExact(config);
    await assertPerStore(config);
  });

  it('schema and data problems PostgreSQL reports reach the user with shard, table and SQLSTATE, never as a bug', async () => {
    const config = loadConfig(cfg);
    // a via column the server cannot compare with its parent's: a configuration error (exit 2)
    await sql(config.source, 'CREATE TABLE rental_note (note_id integer PRIMARY KEY, rental_ref text NOT NULL)');
    try {
      const variant = `${stage.fleet.dir}/via-type.yaml`;
      writeFileSync(variant, `${readFileSync(cfg, 'utf8').replace('health:', '  - name: rental_note\n    via: rental_ref -> rental.rental_id\nhealth:')}`);
      const r = runCli(['plan', '--config', variant]);
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, /table public\.rental_note: via column rental_ref \(text\) cannot be compared with public\.rental\.rental_id \(integer\): operator does not exist: integer = text \[42883\]/);
    } finally {
      await sql(config.source, 'DROP TABLE rental_note');
    }
    // a reference row a shard refuses (a check constraint only that shard has): exit 3 naming shard, table, SQLSTATE
    const s0 = config.shards[0]!.primary;
    await sql(s0, 'ALTER TABLE language ADD CONSTRAINT language_few CHECK (language_id < 3) NOT VALID');
    await sql(config.source, `UPDATE language SET last_update = last_update + interval '1 day' WHERE language_id = 5`);
    try {
      const r = runCli(['migrate', '--config', cfg]);
      assert.equal(r.status, 3, r.stderr);
      assert.match(r.stderr, /shard s0, reference tables, table public\.language: new row for relation "language" violates check constraint "language_few" \[23514\]/);
      assert.doesNotMatch(r.stderr, /internal error|This is a bug/);
    } finally {
      await sql(s0, 'ALTER TABLE language DROP CONSTRAINT language_few');
    }
    assert.equal(runCli(['migrate', '--config', cfg]).status, 0);
    assert.equal(runCli(['verify', '--config', cfg]).status, 0);
  });
});

describe('schemas: pgbench tables (pgbench_history without a primary key, duplicate rows)', () => {
  let stage: Stage;
  let cfg: string;
  before(async () => {
    stage = await stageFleet({ kind: 'pgbench', shards: 3, scale: 0.6 });
    cfg = stage.configPath;
  });
  after(() => stage?.stop());

  it('all four tables migrate, verify and rebalance exactly, duplicates included; verify sees a lost duplicate', async () => {
    const dups = await sql(stage.config.source, `SELECT count(*) AS n FROM (SELECT 1 FROM pgbench_history h GROUP BY h.* HAVING count(*) > 1) d`);
    assert.ok(Number(dups[0].n) > 0, 'the fixture has duplicate history rows');
    const m = runCli(['migrate', '--config', cfg]);
    assert.equal(m.status, 0, m.stderr);
    assert.equal(runCli(['verify', '--config', cfg]).status, 0);
    await assertExact(stage.config);

    const router = topologyRouter(stage.config);
    const branch = '1';
    const to = stage.config.shards.map((s) => s.id).find((s) => s !== router.shardFor(branch))!;
    // pgbench_history has no primary key: online moves refuse it and say so, --offline moves it
    const online = runCli(['pin', branch, to, '--apply', '--config', cfg]);
    assert.equal(online.status, 3, online.stderr);
    assert.match(online.stderr, /table public\.pgbench_history has no primary key: an online move applies the unit's updates and deletes by key/);
    assert.match(online.stderr, /--offline/);
    const pin = runCli(['rebalance', '--apply', '--offline', '--config', cfg]);
    assert.equal(pin.status, 0, pin.stderr);
    const moved = loadConfig(cfg);
    assert.equal(runCli(['verify', '--config', cfg]).status, 0);
    await assertExact(moved);

    // one copy of a duplicated row gone on a shard: verify must see it (count and checksum)
    const shard = moved.shards.find((s) => s.id === to)!;
    await sql(shard.primary, `DELETE FROM pgbench_history WHERE ctid = (SELECT min(ctid) FROM pgbench_history h
                                WHERE bid = 1 AND (tid, aid, delta, mtime) IN (SELECT tid, aid, delta, mtime FROM pgbench_history WHERE bid = 1
                                GROUP BY 1, 2, 3, 4 HAVING count(*) > 1))`);
    const v = runCli(['verify', '--config', cfg]);
    assert.equal(v.status, 1, v.stdout);
    assert.match(v.stdout, /unit 1, table public\.pgbench_history, shard \S+: source \d+ rows, shard \d+ rows/);
    assert.equal(runCli(['migrate', '--resync', '--units', '1', '--config', cfg]).status, 0);
    assert.equal(runCli(['verify', '--config', cfg]).status, 0);
  });

  it('add-shard resolves ${VAR} in --primary, keeps the reference in the file; a missing password gets a one-line hint', async () => {
    const server = (await stage.fleet.addShard()).primary;
    const noPassword = new URL(server.url());
    noPassword.password = '';
    const bare = runCli(['add-shard', '--config', cfg, '--id', 's3', '--primary', noPassword.toString()], { PGPASSWORD: '', PGPASSFILE: `${stage.fleet.dir}/no-such-pgpass` });
    assert.equal(bare.status, 3, bare.stderr);
    assert.match(bare.stderr, /shard s3 \(postgres:\/\/[^)]*\): cannot connect: the server asks for a password and none was found/);
    assert.match(bare.stderr, /^hint: .*PGPASSWORD.*password file \(PGPASSFILE, else ~\/\.pgpass/m);
    assert.doesNotMatch(bare.stderr, /SASL|internal error/);

    const unset = runCli(['add-shard', '--config', cfg, '--id', 's3', '--primary', 'postgres://postgres:${S3_PASSWORD}@127.0.0.1:1/app']);
    assert.equal(unset.status, 2, unset.stderr);
    assert.match(unset.stderr, /--primary: environment variable S3_PASSWORD is not set/);

    const withVar = noPassword.toString().replace(`//${server.user}@`, `//${server.user}:\${S3_PASSWORD}@`);
    assert.match(withVar, /\$\{S3_PASSWORD\}@/);
    const env = { S3_PASSWORD: server.password };
    const r = runCli(['add-shard', '--config', cfg, '--id', 's3', '--primary', withVar, '--apply', '--offline'], env); // pgbench_history: no primary key
    assert.equal(r.status, 0, r.stderr);
    assert.ok(readFileSync(cfg, 'utf8').includes(withVar), 'the file keeps ${S3_PASSWORD}');
    assert.doesNotMatch(r.stdout + r.stderr, new RegExp(server.password));
    const v = runCli(['verify', '--config', cfg], env);
    assert.equal(v.status, 0, v.stdout + v.stderr);
    await assertExact(loadConfig(cfg, { env: { ...process.env, ...env } }));
  });
});
