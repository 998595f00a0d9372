import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { cellToCenterChild, gridDisk } from 'h3-js';
import { loadConfig } from '../src/config/load.js';
import { editConfigFile, setMapping } from '../src/config/edit-file.js';
import { topologyRouter } from '../src/routing/router.js';
import { crossShard } from '../src/two-phase/commit.js';
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

describe('location fleet: cross-shard writes (two-phase commit, resolve) and capacity status', () => {
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

    const h = runCli(['health', '--config', stage.configPath, '--json', '--prepared-warning', '0s', '--latency-warning', '100s', '--latency-critical', '100s']);
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

  it('read-only cells refuse writes on every shard (other cells keep taking them); plan and health show them; active lifts it', async () => {
    const st = stage.config.strategy;
    assert.ok(st.kind === 'h3');
    const { cell, shard } = st.mapping[0]!;
    const other = stage.config.shards.find((s) => s.id !== shard)!.id;
    const inside = BigInt(`0x${cellToCenterChild(cell, 12)}`);
    const [nextCell] = gridDisk(cell, 2).filter((c) => c !== cell && !st.mapping.some((m) => m.cell === c));
    const outside = BigInt(`0x${cellToCenterChild(nextCell!, 12)}`);
    const write = (on: string, id: number, h3: bigint) =>
      sql(stage.config.shards.find((s) => s.id === on)!.primary,
        `INSERT INTO bumps (id, user1_id, user2_id, latitude, longitude, h3_index, distance_m, confidence, is_cross_shard, bumped_at)
         VALUES ($1, 1, 2, 0, 0, $2, 1, 0.5, false, now())`, [id, h3.toString()]);

    const set = runCli(['mapping', 'set', cell, shard, '--status', 'read-only', '--apply', '--config', stage.configPath]);
    assert.equal(set.status, 0, set.stderr);
    assert.match(set.stderr, new RegExp(`cell ${cell} mapped to ${shard} \\(read-only\\)`));
    const config = loadConfig(stage.configPath);
    assert.equal(topologyRouter(config).shardForCell(cell), shard);
    for (const on of [shard, other]) {
      await assert.rejects(write(on, 9_100_001, inside), (e: any) => {
        assert.equal(e.code, '25006');
        assert.match(e.message, new RegExp(`shardctl: cell ${cell} is read-only \\(capacity_status\\); writes to it are refused`));
        assert.match(e.hint, new RegExp(`shardctl mapping set ${cell} ${shard} --status active`));
        return true;
      });
    }
    await write(shard, 9_100_002, outside); // a neighbouring cell is not fenced
    await assert.rejects(crossShard(config, async (tx) => {
      for (const s of config.shards) await tx.query(s.id, `UPDATE bumps SET h3_index = $1 WHERE id = 9100002`, [inside.toString()]);
    }), /is read-only/);
    assert.equal((await sql(stage.config.shards.find((s) => s.id === shard)!.primary, 'SELECT h3_index FROM bumps WHERE id = 9100002'))[0].h3_index, outside.toString());

    const plan = runCli(['plan', '--config', stage.configPath]);
    assert.equal(plan.status, 0, plan.stderr);
    assert.match(plan.stdout, new RegExp(`^${cell} +\\S+ +${shard} +read-only `, 'm'));
    const h = runCli(['health', '--config', stage.configPath, '--json']);
    assert.deepEqual(JSON.parse(h.stdout).cellStatus, [{ shard, readOnly: [cell], full: [] }]);
    assert.match(runCli(['health', '--config', stage.configPath]).stdout, new RegExp(`^cells ${shard}: 1 read-only \\(${cell}\\)$`, 'm'));

    assert.equal(runCli(['mapping', 'set', cell, shard, '--status', 'active', '--apply', '--config', stage.configPath]).status, 0);
    await write(shard, 9_100_003, inside);
  });

  it('rebalance --apply marks a cell made read-only by a config edit (and lifts the mark when it is active again)', async () => {
    const st = loadConfig(stage.configPath).strategy;
    assert.ok(st.kind === 'h3');
    const { cell, shard } = st.mapping[2]!;
    const inside = BigInt(`0x${cellToCenterChild(cell, 12)}`).toString();
    const primary = stage.config.shards.find((s) => s.id === shard)!.primary;
    const write = (id: number) =>
      sql(primary, `INSERT INTO bumps (id, user1_id, user2_id, latitude, longitude, h3_index, distance_m, confidence, is_cross_shard, bumped_at)
                    VALUES ($1, 1, 2, 0, 0, $2, 1, 0.5, false, now())`, [id, inside]);
    const edit = (status: string) => {
      editConfigFile(stage.configPath, setMapping(cell, shard, undefined, status as 'read-only' | 'active'));
      const r = runCli(['rebalance', '--apply', '--config', stage.configPath]);
      assert.equal(r.status, 0, r.stderr);
    };
    edit('read-only');
    await assert.rejects(write(9_200_001), new RegExp(`cell ${cell} is read-only`));
    edit('active');
    await write(9_200_002);
  });

  it('a full cell stays, and its shard takes no cell it does not hold in a proposal', () => {
    const st = loadConfig(stage.configPath).strategy;
    assert.ok(st.kind === 'h3');
    const { cell, shard } = st.mapping[1]!;
    assert.equal(runCli(['mapping', 'set', cell, shard, '--status', 'full', '--apply', '--config', stage.configPath]).status, 0);
    const r = runCli(['plan', '--config', stage.configPath, '--json', '--propose-mapping', '--shards', '3']);
    assert.equal(r.status, 0, r.stderr);
    const p = JSON.parse(r.stdout);
    const now = new Map(p.assignment.map((a: { unit: string; shard: string }) => [a.unit, a.shard]));
    const proposed = p.proposedMapping.mapping as { cell: string; shard: string; capacity_status?: string }[];
    assert.deepEqual(proposed.find((m) => m.cell === cell), { cell, shard, ...(st.mapping[1]!.region ? { region: st.mapping[1]!.region } : {}), capacity_status: 'full' });
    for (const m of proposed) if (m.shard === shard && now.has(m.cell)) assert.equal(now.get(m.cell), shard, `${m.cell} moved onto full ${shard}`);
    assert.deepEqual(p.restricted.map((c: { cell: string; status: string }) => [c.cell, c.status]), [[cell, 'full']]);
  });
});
