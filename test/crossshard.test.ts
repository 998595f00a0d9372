import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { crossShard } from '../src/crossshard/two-phase.js';
import { stageFleet, type Stage } from '../harness/demo/stage.js';
import { insertBump } from './helpers/bumps.js';
import { runCli } from './helpers/cli.js';
import { sql } from './helpers/fleet.js';
import { repoPath } from './helpers/paths.js';

/** Starts the coordinator child and resolves once it printed `phase gid` for the phase it stops at. */
function coordinator(configPath: string, stopAt: 'prepared' | 'decided', id: number) {
  const child = spawn(process.execPath, [repoPath('dist/test/helpers/coordinator.js'), configPath, stopAt, String(id)]);
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const reached = new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = new RegExp(`^${stopAt} (\\S+)$`, 'm').exec(out);
      if (m) resolve(m[1]!);
    });
    child.on('exit', (code) => reject(new Error(`coordinator exited (${code}) before ${stopAt}: ${err}`)));
  });
  const killed = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  return { child, reached, kill: async () => (child.kill('SIGKILL'), await killed) };
}

describe('cross-shard writes: two-phase commit and resolve', () => {
  let stage: Stage;
  const copies = async (id: number) => {
    const out: string[] = [];
    for (const s of stage.config.shards) if ((await sql(s.primary, 'SELECT 1 FROM bumps WHERE id = $1', [id])).length) out.push(s.id);
    return out;
  };
  const prepared = async () => {
    let n = 0;
    for (const s of stage.config.shards) n += (await sql(s.primary, 'SELECT 1 FROM pg_prepared_xacts')).length;
    return n;
  };
  const stateOf = async (gid: string) => (await sql(stage.config.catalog, 'SELECT state FROM shardctl.transactions WHERE gid = $1', [gid]))[0]?.state;

  before(async () => {
    stage = await stageFleet({ kind: 'location', shards: 2, scale: 0.0005 });
  });
  after(() => stage?.stop());

  it('writes one row to both shards atomically and records the commit', async () => {
    const r = await crossShard(stage.config, async (tx) => {
      for (const s of stage.config.shards) await insertBump(tx, s.id, 9_000_001);
      return 'ok';
    });
    assert.equal(r.value, 'ok');
    assert.deepEqual(r.shards, ['s0', 's1']);
    assert.match(r.gid!, /^shardctl_[0-9a-f-]{36}$/);
    assert.deepEqual(await copies(9_000_001), ['s0', 's1']);
    assert.equal(await stateOf(r.gid!), 'committed');
    assert.equal(await prepared(), 0);
  });

  it('a failure on one shard that the application swallowed rolls back every shard', async () => {
    await assert.rejects(
      crossShard(stage.config, async (tx) => {
        await insertBump(tx, 's0', 9_000_002);
        await insertBump(tx, 's1', 9_000_002);
        await insertBump(tx, 's1', 9_000_002).catch(() => undefined); // duplicate key, caught: s1's transaction is dead
      }),
      /shard s1: two-phase commit shardctl_\S+: prepare: the transaction had failed/,
    );
    assert.deepEqual(await copies(9_000_002), []);
    assert.equal(await prepared(), 0);
    const states = await sql(stage.config.catalog, `SELECT state FROM shardctl.transactions WHERE state <> 'committed'`);
    assert.deepEqual(states, [{ state: 'aborted' }]);
  });

  it('coordinator killed after prepare, before the decision: health warns, resolve waits for a live coordinator, then rolls back', async () => {
    const c = coordinator(stage.configPath, 'prepared', 9_000_003);
    const gid = await c.reached;
    assert.equal(await prepared(), 2);
    const live = runCli(['resolve', '--config', stage.configPath, '--json']);
    assert.equal(live.status, 1, live.stderr);
    assert.equal(JSON.parse(live.stdout).transactions[0].decision, 'in progress');
    await c.kill();

    const h = runCli(['health', '--config', stage.configPath, '--json', '--prepared-warning', '0', '--latency-warning', '100000', '--latency-critical', '100000']);
    const report = JSON.parse(h.stdout);
    const check = report.servers.flatMap((s: any) => s.checks).find((x: any) => x.check === 'prepared' && x.status !== 'ok');
    assert.ok(check, h.stdout);
    assert.match(check.message, /1 prepared transaction\(s\), the oldest .* old \(shardctl resolve finishes them\)/);
    assert.equal(h.status, 1, h.stdout);

    const r = runCli(['resolve', '--config', stage.configPath]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`${gid} .* rollback +s0: rolled back, s1: rolled back`));
    assert.deepEqual(await copies(9_000_003), []);
    assert.equal(await prepared(), 0);
    assert.equal(await stateOf(gid), 'aborted');
    const again = runCli(['resolve', '--config', stage.configPath]);
    assert.equal(again.status, 0);
    assert.match(again.stdout, /no transaction in doubt/);
  });

  it('coordinator killed after the commit decision: resolve commits on every shard', async () => {
    const c = coordinator(stage.configPath, 'decided', 9_000_004);
    const gid = await c.reached;
    await c.kill();
    assert.deepEqual(await copies(9_000_004), [], 'prepared, not yet visible');
    const r = runCli(['resolve', '--config', stage.configPath, '--json']);
    assert.equal(r.status, 0, r.stderr);
    const t = JSON.parse(r.stdout).transactions[0];
    assert.equal(t.gid, gid);
    assert.equal(t.decision, 'commit');
    assert.deepEqual(t.shards.map((s: any) => s.action), ['committed', 'committed']);
    assert.deepEqual(await copies(9_000_004), ['s0', 's1']);
    assert.equal(await stateOf(gid), 'committed');
  });
});
