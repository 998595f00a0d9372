import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { parse, stringify } from 'yaml';
import { migrate } from '../src/index.js';
import type { MovePoint } from '../src/rebalance/journal.js';
import { groupStreamNames } from '../src/rebalance/online.js';
import { runCliAsync, runCliKilledAtAsync, watchCli, type CliResult } from './helpers/cli.js';
import { sql } from './helpers/fleet.js';
import { fenceHold, session } from './helpers/fence-hold.js';
import type { LedgerWriter } from './helpers/ledger.js';
import { catalogRoutedWriter, checkLedger, ledgerOwner, stageLedger, TENANTS, type LedgerStage } from './helpers/ledger-fleet.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Moves of several units between the same two shards share ONE stream: one slot and publication on
 * the old shard for the group, one copy, one follower, one fence. A live-routing writer commits to
 * every moving unit all along; the acknowledged-writes oracle (its own SQL and routing) then finds
 * every write exactly once on the shard that owns it. Killed at every point of a group's move, a
 * rerun completes it exactly; a new shard stuck after the fence lifts the fence of every unit.
 */
describe('online moves of several units between two shards share one stream', { timeout: 900_000 }, () => {
  let stage: LedgerStage;
  let writer: LedgerWriter;
  let close: (() => Promise<void>) | undefined;
  /** the tenants that move together, all on s0 at first */
  let group: number[];
  const urls = new Map<string, string>();

  const owner = () => ledgerOwner(stage);
  const check = () => checkLedger(stage, writer);
  /** pins the group's tenants to `shard` in the config file (a topology edit, as `pin` makes it) */
  const pinGroup = (shard: string) => {
    const doc = parse(readFileSync(stage.configPath, 'utf8'));
    doc.strategy.pins = { ...(doc.strategy.pins ?? {}), ...Object.fromEntries(group.map((t) => [String(t), shard])) };
    writeFileSync(stage.configPath, stringify(doc), { mode: 0o600 });
  };
  const moveSlots = async (shard: string) =>
    (await sql(urls.get(shard)!, `SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'shardctl_move%'`)).map((r) => r.slot_name as string);
  /** nothing of a move left: no slot or publication on any shard, no journal row */
  const assertClean = async () => {
    for (const [id, url] of urls) {
      assert.deepEqual(await sql(url, `SELECT slot_name FROM pg_replication_slots`), [], `slots left on ${id}`);
      assert.deepEqual(await sql(url, `SELECT pubname FROM pg_publication`), [], `publications left on ${id}`);
    }
    assert.deepEqual(await sql(stage.config.catalog, 'SELECT unit, step FROM shardctl.moves'), []);
  };
  const placed = async (t: number) => (await sql(stage.config.catalog, 'SELECT shard FROM shardctl.placements WHERE unit = $1', [String(t)]))[0]?.shard as string;

  before(async () => {
    stage = await stageLedger({ shards: 2 });
    assert.equal((await migrate(stage.config)).ok, true);
    for (const s of stage.config.shards) urls.set(s.id, s.primary);
    group = TENANTS.filter((t) => owner()(t) === 's0').slice(0, 3);
    assert.ok(group.length >= 2, `the fixture places at least two tenants on s0 (${group.join(', ')})`);
    ({ writer, close } = await catalogRoutedWriter(stage));
  });
  after(async () => {
    await close?.();
    await stage?.stop();
  });

  it('a rebalance of several units s0 → s1 under a writer: one slot on s0 for all of them, every acknowledged write once where it belongs', async () => {
    pinGroup('s1');
    const seen = new Set<string>();
    let most = 0;
    let polling = true;
    const poll = (async () => {
      while (polling) {
        const now = await moveSlots('s0');
        for (const s of now) seen.add(s);
        most = Math.max(most, now.length);
        await sleep(20);
      }
    })();
    const moved: { unit: string; online: boolean }[] = [];
    const commitsBefore = writer.stats.commits.length;
    const r = await watchCli(['rebalance', '--apply', '--json', '--config', stage.configPath], (e) => {
      if (e.type === 'moved') moved.push({ unit: e.unit as string, online: e.online as boolean });
    });
    polling = false;
    await poll;
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.deepEqual(moved.map((m) => m.unit).sort(), group.map(String).sort());
    assert.ok(moved.every((m) => m.online), 'every unit moved online');
    assert.equal(seen.size, 1, `one stream for the group, saw slots ${[...seen].join(', ')}`);
    assert.equal(most, 1, 'one move slot at a time on the old shard');
    for (const t of group) assert.equal(await placed(t), 's1');
    assert.ok(writer.stats.commits.length > commitsBefore, 'the writer kept committing');
    await check();
    await assertClean();
  });

  it('SIGKILL at points of a group move, then the same command again: exact', async () => {
    // a unit alone is a group of one: the other points are walked by the single-unit kill tests on the
    // same code (rebalance-online, matrix-moves, move-proof); these are one per journal state of a group
    const points: MovePoint[] = ['target-fenced', 'slot', 'copy', 'proving', 'source-fencing', 'verified', 'flipped', 'purged'];
    for (const point of points) {
      const to = (await placed(group[0]!)) === 's0' ? 's1' : 's0';
      pinGroup(to);
      const killed = await runCliKilledAtAsync(point, ['rebalance', '--apply', '--config', stage.configPath]);
      assert.equal(killed.status, null, `killed at ${point}: ${killed.stdout}${killed.stderr.slice(-1500)}`);
      assert.ok((await moveSlots(to === 's1' ? 's0' : 's1')).length <= 1, `one move slot at ${point}`);
      const again = await runCliAsync(['rebalance', '--apply', '--config', stage.configPath]);
      assert.equal(again.status, 0, `resumed after ${point}: ${again.stdout}${again.stderr}`);
      for (const t of group) assert.equal(await placed(t), to, `tenant ${t} after ${point}`);
      await check();
      await assertClean();
    }
  });

  it('a new shard stuck after the fence: the fence of every unit of the group is lifted, all stay writable on the old shard, exit 3', async () => {
    const from = await placed(group[0]!);
    const to = from === 's0' ? 's1' : 's0';
    const slot = groupStreamNames(group.map(String)).slot;
    const hold = await fenceHold(urls.get(from)!, urls.get(to)!, slot);
    const position = await session(urls.get(to)!); // holds the new shard's last commit
    let gateOpen = false;
    pinGroup(to);
    const run = watchCli(['rebalance', '--apply', '--json', '--config', stage.configPath], (e) => {
      if (e.type === 'step' && e.step === 'streaming' && !gateOpen) {
        gateOpen = true;
        void hold.streaming();
      }
    }, { SHARDCTL_MOVE_TIMEOUT: '3s' });
    const fenced = async () => (await sql(urls.get(from)!, 'SELECT unit FROM shardctl.fenced_units WHERE unit = ANY($1::text[])', [group.map(String)])).length;
    // a move that ends before its fence shows says why (it failed once under load, unexplained)
    let ended: CliResult | undefined;
    void run.then((r) => (ended = r));
    try {
      await position.query('BEGIN'); // no lock yet: the fence below waits with a 3 s bound
      await hold.fenceWaiting();
      await position.query('SELECT * FROM shardctl.follow_position WHERE slot = $1 FOR UPDATE', [slot]);
      await hold.letIn();
      for (let i = 0; i < 200 && !ended && (await fenced()) < group.length; i++) await sleep(50);
      const endedWhy = ended ? `; the move ended first (exit ${ended.status}): ${(ended.stdout + ended.stderr).slice(-1500)}` : '';
      assert.equal(await fenced(), group.length, `one fence over every unit of the group on the old shard${endedWhy}`);
      let lifted = false;
      for (let i = 0; i < 600 && !lifted; i++) {
        lifted = (await fenced()) === 0;
        if (!lifted) await sleep(100);
      }
      assert.ok(lifted, 'the fence of every unit is lifted on the old shard while the new shard is still stuck');
      // each unit takes writes on its old shard again (the writer's own writes land there too)
      for (const t of group) await sql(urls.get(from)!, 'UPDATE ledger SET v = v WHERE k = (SELECT min(k) FROM ledger WHERE bid = $1)', [t]);
    } finally {
      await position.query('ROLLBACK').catch(() => undefined);
      await position.end().catch(() => undefined);
      await hold.end();
    }
    const r = await run;
    assert.equal(r.status, 3, r.stdout + r.stderr);
    assert.match(r.stdout + r.stderr, new RegExp(`shard ${to} did not apply and prove the last changes within 3s of the fence on shard ${from}`));
    for (const t of group) assert.equal(await placed(t), from, `tenant ${t} stays placed on its old shard`);
    // the oracle routes by the placements: the pins are taken back, as a user would after exit 3
    pinGroup(from);
    await check();
    await assertClean();
  });
});
