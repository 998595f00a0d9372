import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';
import { after, before, describe, it } from 'node:test';
import { stageFleet, type Stage } from '../harness/demo/stage.js';
import { runCli, runCliAsync } from './helpers/cli.js';
import { startFollower } from './helpers/watched.js';
import { sql } from './helpers/fleet.js';

const ID_STRIDE = 1024; // the interleaving rule (sequences/align.ts), restated: the test's own oracle

/** Every row of tenant `id` in a server's POS tables, by the test's own SQL. */
async function tenantRows(url: string, id: number): Promise<number> {
  const [r] = await sql(
    url,
    `SELECT (SELECT count(*) FROM restaurants WHERE id = $1) + (SELECT count(*) FROM categories WHERE restaurant_id = $1)
          + (SELECT count(*) FROM products WHERE restaurant_id = $1) + (SELECT count(*) FROM themes WHERE restaurant_id = $1)
          + (SELECT count(*) FROM users WHERE restaurant_id = $1) + (SELECT count(*) FROM orders WHERE restaurant_id = $1)
          + (SELECT count(*) FROM order_items i JOIN orders o ON o.id = i.order_id WHERE o.restaurant_id = $1)
          + (SELECT count(*) FROM analytics_events WHERE restaurant_id = $1) AS n`,
    [id],
  );
  return Number(r.n);
}

/** Deletes tenant `id` from a server, children first. */
async function deleteTenant(url: string, id: number): Promise<void> {
  await sql(
    url,
    `WITH i AS (DELETE FROM order_items USING orders o WHERE o.id = order_items.order_id AND o.restaurant_id = $1 RETURNING 1),
          e AS (DELETE FROM analytics_events WHERE restaurant_id = $1 RETURNING 1) SELECT (SELECT count(*) FROM i) + (SELECT count(*) FROM e)`,
    [id],
  );
  for (const t of ['orders', 'products', 'categories', 'themes', 'users']) await sql(url, `DELETE FROM ${t} WHERE restaurant_id = $1`, [id]);
  await sql(url, 'DELETE FROM restaurants WHERE id = $1', [id]);
}

/** The next id a server's sequence hands out, and its step. */
async function nextId(url: string, seq: string): Promise<{ inc: bigint; next: bigint }> {
  const [r] = await sql(
    url,
    `SELECT s.increment_by::text AS inc, (q.last_value + CASE WHEN q.is_called THEN s.increment_by ELSE 0 END)::text AS next
       FROM ${seq} q, pg_sequences s WHERE s.schemaname = 'public' AND s.sequencename = $1`,
    [seq],
  );
  return { inc: BigInt(r.inc), next: BigInt(r.next) };
}

describe('the online window: seams of its lifecycle (POS, 2 shards)', () => {
  let stage: Stage;
  let cfg: string;
  const GONE = 5; // deleted on the monolith between migrate and migrate --follow
  before(async () => {
    stage = await stageFleet({ kind: 'pos', shards: 2, scale: 0.01, fleet: { settings: { wal_level: 'logical' } } });
    cfg = stage.configPath;
    // themes.id takes its ids from a sequence through its DEFAULT only (not owned by the column)
    for (const url of [stage.config.source, ...stage.config.shards.map((s) => s.primary)]) {
      await sql(url, `ALTER TABLE themes ALTER COLUMN id DROP IDENTITY`);
      await sql(url, `CREATE SEQUENCE theme_ids`);
      await sql(url, `SELECT setval('theme_ids', (SELECT coalesce(max(id), 0) + 1 FROM themes), false)`);
      await sql(url, `ALTER TABLE themes ALTER COLUMN id SET DEFAULT nextval('theme_ids')`);
    }
    const m = runCli(['migrate', '--config', cfg]);
    assert.equal(m.status, 0, m.stdout + m.stderr);
  });
  after(() => stage?.stop());

  it('a sequence used only through DEFAULT nextval(…) gets the per-shard stride', async () => {
    for (const [i, s] of stage.config.shards.entries()) {
      const { inc, next } = await nextId(s.primary, 'theme_ids');
      assert.equal(inc, BigInt(ID_STRIDE), `${s.id}: theme ids step by ${ID_STRIDE}`);
      assert.equal(next % BigInt(ID_STRIDE), BigInt(i + 1), `${s.id}: the next theme id is ≡ ${i + 1}`);
      const [max] = await sql(stage.config.source, 'SELECT max(id)::text AS m FROM themes');
      assert.ok(next > BigInt(max.m), `${s.id}: past every id the monolith handed out`);
    }
  });

  it('a tenant deleted on the monolith before migrate --follow leaves no row on the shards after cutover; every command that writes is refused in the follow window', async () => {
    const src = stage.config.source;
    const holders = async (id: number) => (await Promise.all(stage.config.shards.map(async (s) => [s.id, await tenantRows(s.primary, id)] as const))).filter(([, n]) => n > 0);
    assert.equal((await holders(GONE)).length, 1, 'the plain migrate copied the tenant');
    await deleteTenant(src, GONE);
    const first = startFollower(cfg);
    const child = await first.streaming();
    child.kill('SIGKILL'); // the window stays open without its follower (a running one holds the run lock besides)
    await first.exit;
    assert.deepEqual(await holders(GONE), [], 'the follow copy removed the rows of the tenant the monolith no longer has');
    const [placed] = await sql(stage.config.catalog, `SELECT count(*)::int AS n FROM shardctl.placements WHERE unit = $1`, [String(GONE)]);
    assert.equal(placed.n, 0, 'and its placement');

    // the follow window: everything that copies, moves or changes shards is refused, naming the way out
    // (tenant 1 pinned by hand where it lives already, so that `unpin 1` is a real change to refuse)
    const home = (await sql(stage.config.catalog, `SELECT shard FROM shardctl.placements WHERE unit = '1'`))[0].shard as string;
    const doc = parse(readFileSync(cfg, 'utf8'));
    doc.strategy.pins = { ...doc.strategy.pins, 1: home };
    writeFileSync(cfg, stringify(doc), { mode: 0o600 });
    const configBefore = readFileSync(cfg, 'utf8');
    const versions = async () => JSON.stringify(await Promise.all(stage.config.shards.map((s) => sql(s.primary, 'SELECT count(*)::int AS n, sum(xmin::text::bigint)::text AS x FROM restaurants'))));
    const rowsBefore = await versions();
    const refused = [
      ['migrate', '--resync'],
      ['migrate'],
      ['rebalance', '--apply'],
      ['pin', '1', home === 's0' ? 's1' : 's0', '--apply'],
      ['unpin', '1', '--apply'],
      ['add-shard', '--id', 's9', '--primary', stage.config.catalog, '--apply'],
      ['remove-shard', 's1', '--apply'],
    ];
    for (const args of refused) {
      const r = await runCliAsync([...args, '--config', cfg]);
      assert.equal(r.status, 3, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /refused: an online migration is open \(migrate --follow, following\)/, args.join(' '));
      assert.match(r.stderr, /shardctl cutover .*shardctl migrate --abandon/, args.join(' '));
    }
    assert.equal(readFileSync(cfg, 'utf8'), configBefore, 'no topology edit reached the config file');
    assert.equal(await versions(), rowsBefore, 'no row was rewritten on the shards');
    for (const args of [['rebalance'], ['remove-shard', 's1'], ['migrate', '--dry-run']]) {
      const r = await runCliAsync([...args, '--config', cfg]);
      assert.equal(r.status, 0, `the preview ${args.join(' ')} still works: ${r.stdout}${r.stderr}`);
    }

    const f = startFollower(cfg);
    const again = await f.streaming();
    try {
      // stale rows of a placed unit the monolith does not have (as a follow started by an older
      // shardctl left them): cutover refuses, naming unit and shard
      const PHANTOM = 777_777;
      const s0 = stage.config.shards[0]!;
      // (an older shardctl had no trigger recording writes that are not the follower's: off for this one)
      await sql(s0.primary, 'ALTER TABLE restaurants DISABLE TRIGGER shardctl_follow_record');
      await sql(s0.primary, `INSERT INTO restaurants SELECT $1::bigint, name, slug || '-phantom', currency_code, timezone, address, latitude, longitude, opened_on, is_active, tags, logo, gen_random_uuid(), created_at, deleted_at FROM restaurants LIMIT 1`, [PHANTOM]);
      await sql(s0.primary, 'ALTER TABLE restaurants ENABLE ALWAYS TRIGGER shardctl_follow_record');
      await sql(stage.config.catalog, `INSERT INTO shardctl.placements (unit, shard, rows) VALUES ($1, $2, 1)`, [String(PHANTOM), s0.id]);
      const stale = await runCliAsync(['cutover', '--max-lag', '10m', '--timeout', '120', '--config', cfg]);
      assert.equal(stale.status, 3, stale.stdout + stale.stderr);
      assert.match(stale.stderr, new RegExp(`unit ${PHANTOM}: the monolith no longer has it, but shard ${s0.id} holds its rows`));
      await sql(s0.primary, 'DELETE FROM restaurants WHERE id = $1', [PHANTOM]);
      await sql(stage.config.catalog, 'DELETE FROM shardctl.placements WHERE unit = $1', [String(PHANTOM)]);

      const cut = await runCliAsync(['cutover', '--reverse', '--max-lag', '10m', '--timeout', '120', '--config', cfg]);
      assert.equal(cut.status, 0, cut.stdout + cut.stderr);
      assert.equal((await f.exit).status, 0);
    } finally {
      again.kill('SIGKILL');
      await f.exit;
    }
    assert.deepEqual(await holders(GONE), [], 'after cutover no shard holds the deleted tenant');

    // the rollback window: the same commands are refused, naming its way out
    for (const args of [['migrate', '--resync'], ['rebalance', '--apply'], ['pin', '1', 's1', '--apply'], ['remove-shard', 's1', '--apply'], ['add-shard', '--id', 's9', '--primary', stage.config.catalog, '--apply']]) {
      const r = await runCliAsync([...args, '--config', cfg]);
      assert.equal(r.status, 3, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /refused: a rollback window is open \(cutover --reverse\)/, args.join(' '));
      assert.match(r.stderr, /shardctl cutover --finish .*shardctl rollback/, args.join(' '));
    }
    const fin = await runCliAsync(['cutover', '--finish', '--config', cfg]);
    assert.equal(fin.status, 0, fin.stdout + fin.stderr);
    const r = await runCliAsync(['rebalance', '--apply', '--config', cfg]);
    assert.equal(r.status, 0, `after the window, rebalance --apply runs: ${r.stdout}${r.stderr}`);
  });
});
