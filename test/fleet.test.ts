// The embedded fleet against real PostgreSQL servers: no mocks anywhere.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, promises as fsp, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { hydrateSymlinks, startFleet, sweepStaleFleets, type Fleet } from '../harness/fleet/index.js';
import { redactText, redactUrl } from '../src/redact.js';

const FLEET_MODULE = new URL('../harness/fleet/index.js', import.meta.url).href;

async function eventually<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
}

const postmasterPidOf = (dataDir: string) => Number.parseInt(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8'), 10);

/** A pid that certainly belongs to no process any more. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '0']);
  await new Promise((r) => child.on('exit', r));
  return child.pid!;
}

describe('hydrateSymlinks', () => {
  test('creates missing and dangling links, keeps existing ones, is idempotent', async () => {
    const root = await fsp.mkdtemp(path.join(os.tmpdir(), 'shardctl-hydrate-'));
    try {
      const lib = path.join(root, 'native', 'lib');
      await fsp.mkdir(lib, { recursive: true });
      await fsp.writeFile(path.join(lib, 'libfoo.so.1.2'), 'foo');
      await fsp.writeFile(path.join(lib, 'libbar.so.3.4'), 'bar');
      await fsp.symlink('libfoo.so.1.2', path.join(lib, 'libfoo.so.1')); // already fine
      await fsp.symlink('libgone.so.9', path.join(lib, 'libbar.so')); // dangling: must be replaced
      await fsp.writeFile(
        path.join(root, 'native', 'pg-symlinks.json'),
        JSON.stringify([
          { source: 'native/lib/libfoo.so.1.2', target: 'native/lib/libfoo.so.1' },
          { source: 'native/lib/libfoo.so.1.2', target: 'native/lib/libfoo.so' },
          { source: 'native/lib/libbar.so.3.4', target: 'native/lib/libbar.so' },
        ]),
      );
      assert.equal(await hydrateSymlinks(root), 2);
      assert.equal(await fsp.readlink(path.join(lib, 'libfoo.so')), 'libfoo.so.1.2'); // relative, like the package's script
      assert.equal(await fsp.readFile(path.join(lib, 'libfoo.so'), 'utf8'), 'foo');
      assert.equal(await fsp.readFile(path.join(lib, 'libbar.so'), 'utf8'), 'bar');
      assert.equal(await fsp.readFile(path.join(lib, 'libfoo.so.1'), 'utf8'), 'foo');
      assert.equal(await hydrateSymlinks(root), 0);
      assert.equal(await hydrateSymlinks(path.join(root, 'nowhere')), 0, 'no list: nothing to do');
    } finally {
      await fsp.rm(root, { recursive: true, force: true });
    }
  });
});

describe('redaction', () => {
  test('URLs and free text lose their passwords', () => {
    assert.equal(redactUrl('postgres://postgres:s3cr%40t@127.0.0.1:5432/app'), 'postgres://postgres:***@127.0.0.1:5432/app');
    assert.equal(redactText('x postgresql://u:hunter2@h:1/d and hunter2 again', ['hunter2']), 'x postgresql://u:***@h:1/d and *** again');
  });
  test("a password with an unencoded '@' or '/' loses its tail too", () => {
    for (const url of ['postgres://app:p@ss-tail@db.example:5432/pos', 'postgres://app:p@ss/tail@db.example:5432/pos', 'postgresql://app:a?b@c-tail@db.example:5432/pos']) {
      assert.equal(redactUrl(url), `${url.split(':')[0]}://app:***@db.example:5432/pos`);
      assert.equal(redactText(`cannot reach ${url} now`), `cannot reach ${url.split(':')[0]}://app:***@db.example:5432/pos now`);
    }
  });
});

describe('fleet of 1 source + 4 shards', () => {
  let fleet: Fleet;
  let startMs = 0;
  const logs: string[] = [];

  before(async () => {
    const t0 = Date.now();
    fleet = await startFleet({
      shards: 4,
      serverSettings: { s1: { TimeZone: 'Asia/Seoul', DateStyle: 'SQL, DMY' } },
      onLog: (l) => logs.push(l),
    });
    startMs = Date.now() - t0;
  });
  after(async () => {
    await fleet?.stop();
  });

  test('starts, every server reachable on its own port', async (t) => {
    // the start time is reported, not asserted: on a shared machine it says more about the neighbours
    t.diagnostic(`fleet start ${startMs} ms; ${logs.find((l) => l.includes('template ready')) ?? ''}`);
    const all = [fleet.source, ...fleet.shards.map((s) => s.primary)];
    assert.deepEqual(all.map((s) => s.name), ['source', 's0', 's1', 's2', 's3']);
    assert.deepEqual(fleet.shards.map((s) => s.id), ['s0', 's1', 's2', 's3']);
    assert.equal(new Set(all.map((s) => s.port)).size, 5);
    for (const s of all) {
      assert.equal(s.host, '127.0.0.1');
      assert.equal(s.user, 'postgres');
      assert.equal(s.database, 'app');
      assert.ok(s.dataDir.startsWith(fleet.dir + path.sep));
      assert.equal(await s.isRunning(), true);
      const [row] = await s.query<{ db: string; v: string; su: boolean }>(
        "SELECT current_database() AS db, current_setting('server_version_num') AS v, usesuper AS su FROM pg_user WHERE usename = current_user",
      );
      assert.equal(row?.db, 'app');
      assert.ok(Number(row?.v) >= 170000);
      assert.equal(row?.su, true);
    }
    assert.ok(existsSync(path.join(fleet.dir, 'owner.pid')));
  });

  test('url() carries the password and scram auth rejects a wrong one', async () => {
    const s = fleet.shards[0]!.primary;
    assert.ok(s.url().includes(encodeURIComponent(s.password)));
    assert.ok(s.url('postgres').endsWith('/postgres'));
    const ok = new pg.Client({ connectionString: s.url() });
    await ok.connect();
    assert.equal((await ok.query('SELECT 1 AS one')).rows[0].one, 1);
    await ok.end();
    const bad = new pg.Client({ host: s.host, port: s.port, user: s.user, password: 'wrong', database: s.database });
    await assert.rejects(bad.connect(), /password authentication failed/);
    await bad.end().catch(() => {});
    assert.ok(!logs.join('\n').includes(s.password), 'password never logged');
  });

  test('fleet-wide settings, per-server overrides, sockets in the server dir', async () => {
    const s0 = fleet.shards[0]!.primary;
    const s1 = fleet.shards[1]!.primary;
    const show = async (s: typeof s0, name: string) => Object.values((await s.query(`SHOW ${name}`))[0] ?? {})[0];
    assert.equal(await show(s0, 'TimeZone'), 'UTC');
    assert.equal(await show(s1, 'TimeZone'), 'Asia/Seoul');
    assert.equal(await show(s0, 'DateStyle'), 'ISO, MDY');
    assert.equal(await show(s1, 'DateStyle'), 'SQL, DMY');
    // The override changes real behaviour, not just SHOW.
    const [d] = await s1.query<{ d: string }>("SELECT '2024-03-01 12:00:00+00'::timestamptz::text AS d");
    assert.equal(d?.d, '01/03/2024 21:00:00 KST');
    for (const [k, v] of Object.entries({ fsync: 'off', wal_level: 'logical', hot_standby: 'on', listen_addresses: '127.0.0.1', max_wal_senders: '10' })) {
      assert.equal(await show(s0, k), v, k);
    }
    assert.equal(await show(s0, 'unix_socket_directories'), path.dirname(s0.dataDir));
    assert.ok(existsSync(path.join(path.dirname(s0.dataDir), `.s.PGSQL.${s0.port}`)));
  });

  test('as root, the servers run as the unprivileged postgres user', { skip: process.getuid?.() !== 0 }, () => {
    const pid = postmasterPidOf(fleet.source.dataDir);
    const uid = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    assert.notEqual(uid, '0');
  });

  test("stop('immediate') kills a server quickly; start() brings it back with its data", async () => {
    const s = fleet.shards[2]!.primary;
    await s.query('CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2)');
    const t0 = Date.now();
    await s.stop('immediate');
    const stopMs = Date.now() - t0;
    assert.ok(stopMs < 5000, `stop took ${stopMs} ms`);
    assert.equal(await s.isRunning(), false);
    await assert.rejects(s.query('SELECT 1'), /ECONNREFUSED/);
    const port = s.port;
    await s.start();
    assert.equal(s.port, port);
    assert.equal(await s.isRunning(), true);
    assert.deepEqual(await s.query('SELECT id FROM t ORDER BY id'), [{ id: 1 }, { id: 2 }]);
    await s.start(); // already running: a no-op
  });

  test('a streaming replica follows its primary and can be promoted', async (t) => {
    const shard = fleet.shards[0]!;
    await shard.primary.query('CREATE TABLE r (id int PRIMARY KEY, v text)');
    const t0 = Date.now();
    const replica = await fleet.addReplica(shard);
    t.diagnostic(`replica created in ${Date.now() - t0} ms`);
    assert.equal(replica.name, 's0-r1');
    assert.deepEqual(shard.replicas, [replica]);
    assert.equal(replica.password, shard.primary.password);
    assert.notEqual(replica.port, shard.primary.port);
    assert.deepEqual(await replica.query('SELECT pg_is_in_recovery() AS rec'), [{ rec: true }]);
    const [stat] = await shard.primary.query("SELECT state, application_name FROM pg_stat_replication WHERE application_name = 's0-r1'");
    assert.equal(stat?.state, 'streaming');
    const [slot] = await shard.primary.query("SELECT active FROM pg_replication_slots WHERE slot_name = 's0_r1'");
    assert.equal(slot?.active, true);

    // Existing data arrived with the base backup; new writes stream within seconds.
    assert.deepEqual(await replica.query("SELECT to_regclass('r') IS NOT NULL AS ok"), [{ ok: true }]);
    await shard.primary.query("INSERT INTO r VALUES (1, 'after backup')");
    const row = await eventually('row on replica', async () => (await replica.query('SELECT v FROM r WHERE id = 1'))[0], 5000);
    assert.deepEqual(row, { v: 'after backup' });
    await assert.rejects(replica.query("INSERT INTO r VALUES (2, 'x')"), /read-only transaction/);

    await replica.promote();
    assert.deepEqual(await replica.query('SELECT pg_is_in_recovery() AS rec'), [{ rec: false }]);
    await replica.query("INSERT INTO r VALUES (2, 'promoted')");
    assert.equal((await replica.query('SELECT count(*)::int AS n FROM r'))[0].n, 2);
  });

  test('createReplica errors never show the password', async () => {
    const shard = fleet.shards[3]!;
    await shard.primary.stop('immediate');
    try {
      await assert.rejects(fleet.addReplica(shard), (e: Error) => {
        assert.match(e.message, /could not create replica s3-r1/);
        assert.ok(!e.message.includes(shard.primary.password));
        return true;
      });
      assert.equal(shard.replicas.length, 0);
    } finally {
      await shard.primary.start();
    }
  });

  test('addShard appends s4 with an empty application database', async () => {
    const shard = await fleet.addShard();
    assert.equal(shard.id, 's4');
    assert.equal(fleet.shards.at(-1), shard);
    assert.deepEqual(shard.replicas, []);
    const [row] = await shard.primary.query("SELECT current_database() AS db, count(*)::int AS n FROM pg_tables WHERE schemaname = 'public'");
    assert.deepEqual(row, { db: 'app', n: 0 });
  });

  test('stop() stops every server and removes the directory', async () => {
    const servers = [fleet.source, ...fleet.shards.flatMap((s) => [s.primary, ...s.replicas])];
    const pids = servers.map((s) => postmasterPidOf(s.dataDir));
    await fleet.stop();
    for (const s of servers) assert.equal(await s.isRunning(), false, s.name);
    for (const pid of pids) assert.equal(pidAlive(pid), false);
    assert.equal(existsSync(fleet.dir), false);
    await fleet.stop(); // idempotent
  });
});

describe('keep and sweep', () => {
  test('stop({keep}) leaves servers running; a dead owner without keep gets swept', async () => {
    const fleet = await startFleet({ shards: 1, replicas: 1, database: 'pos', password: 'fixed pass' });
    const dataDirs = [fleet.source.dataDir, fleet.shards[0]!.primary.dataDir, fleet.shards[0]!.replicas[0]!.dataDir];
    try {
      assert.equal(fleet.shards[0]!.replicas[0]!.name, 's0-r1');
      assert.equal(fleet.source.password, 'fixed pass');
      assert.equal(fleet.source.url(), `postgres://postgres:fixed%20pass@127.0.0.1:${fleet.source.port}/pos`);
      assert.deepEqual(await fleet.source.query('SELECT current_database() AS db'), [{ db: 'pos' }]);
      await fleet.stop({ keep: true });
      assert.ok(existsSync(path.join(fleet.dir, 'keep')));
      assert.equal(await fleet.source.isRunning(), true);

      // Kept fleets survive sweeps even with a dead owner.
      await fsp.writeFile(path.join(fleet.dir, 'owner.pid'), `${await deadPid()}\n`);
      assert.ok(!sweepStaleFleets().includes(fleet.dir));
      assert.equal(await fleet.source.isRunning(), true);

      // Without the keep mark, it is stale: servers stopped, directory removed.
      await fsp.rm(path.join(fleet.dir, 'keep'));
      const pids = dataDirs.map(postmasterPidOf);
      assert.ok(sweepStaleFleets().includes(fleet.dir));
      assert.equal(existsSync(fleet.dir), false);
      for (const pid of pids) assert.equal(pidAlive(pid), false);
    } finally {
      // If an assertion failed midway, do not leak servers.
      for (const d of dataDirs) {
        try {
          process.kill(postmasterPidOf(d), 'SIGQUIT');
        } catch {
          /* already gone */
        }
      }
      await fsp.rm(fleet.dir, { recursive: true, force: true });
    }
  });
});

describe('cleanup when the owning process ends', () => {
  /** Start a fleet in a child process, report its dir and postmaster pids, then end as told. */
  async function childFleet(end: 'exit' | 'wait'): Promise<{ child: ReturnType<typeof spawn>; dir: string; pids: number[] }> {
    const script = `
      import { readFileSync } from 'node:fs';
      import path from 'node:path';
      const { startFleet } = await import(${JSON.stringify(FLEET_MODULE)});
      const f = await startFleet({ shards: 1 });
      const pids = [f.source, f.shards[0].primary].map((s) => Number.parseInt(readFileSync(path.join(s.dataDir, 'postmaster.pid'), 'utf8'), 10));
      console.log(JSON.stringify({ dir: f.dir, pids }));
      if (${JSON.stringify(end)} === 'exit') process.exit(0);
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve(out.split('\n')[0]!);
      });
      child.on('exit', (code) => reject(new Error(`child exited early (${code})`)));
    });
    return { child, ...(JSON.parse(line) as { dir: string; pids: number[] }) };
  }

  const exited = (child: ReturnType<typeof spawn>) =>
    child.exitCode !== null || child.signalCode !== null
      ? Promise.resolve({ code: child.exitCode, signal: child.signalCode })
      : new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));

  test('process.exit stops the servers and removes the fleet dir', async () => {
    const { child, dir, pids } = await childFleet('exit');
    try {
      assert.deepEqual(await exited(child), { code: 0, signal: null });
      assert.equal(existsSync(dir), false);
      for (const pid of pids) assert.equal(pidAlive(pid), false);
    } finally {
      child.kill('SIGKILL');
    }
  });

  test('SIGTERM stops the servers, removes the dir and still dies by the signal', async () => {
    const { child, dir, pids } = await childFleet('wait');
    try {
      for (const pid of pids) assert.equal(pidAlive(pid), true);
      child.kill('SIGTERM');
      assert.deepEqual(await exited(child), { code: null, signal: 'SIGTERM' });
      assert.equal(existsSync(dir), false);
      for (const pid of pids) assert.equal(pidAlive(pid), false);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
