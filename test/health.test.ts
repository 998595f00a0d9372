// `health` against a real fleet (2 shards × 1 streaming replica), engine and built CLI: exit codes,
// timeouts against dead and hung hosts, lag, roles, catalog consistency, Prometheus output and the
// monitoring assets. Non-destructive cases first; the promotion last.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { Catalog } from '../src/catalog/catalog.js';
import { loadConfig, parseConfig } from '../src/config/load.js';
import type { Config } from '../src/config/types.js';
import { startFleet, type Fleet, type ServerHandle } from '../harness/fleet/index.js';
import { COUNTER_HELP, health, METRIC_HELP, prometheusText, type HealthReport, type ServerReport } from '../src/health/index.js';
import { repoPath } from './helpers/paths.js';

interface Family {
  name: string;
  help: string;
  type: string;
  metrics: { value: string; labels?: Record<string, string> }[];
}
// The parser ships no types; its CommonJS entry is one function.
const parseProm = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => Family[];

let fleet: Fleet;
let dir: string;
let configFile: string;
let config: Config;
let blackhole: net.Server;
const held: net.Socket[] = [];
let closedPort: number;

const BIN = repoPath('bin/shardctl.js');
const secrets = () => [fleet.source.password, ...fleet.shards.flatMap((s) => [s.primary.password, ...s.replicas.map((r) => r.password)])];

function configText(shards: { id: string; primary: string; replicas: string[] }[], extra = ''): string {
  return [
    `source: ${fleet.source.url()}`,
    'strategy: { kind: jump, key: tenant_id }',
    'shards:',
    ...shards.flatMap((s) => [`  - id: ${s.id}`, `    primary: ${s.primary}`, `    replicas: [${s.replicas.join(', ')}]`, '    capacity: 1GB']),
    'tables:',
    '  - { name: t }',
    // Latency is graded elsewhere; on a shared 2-core box a connect can take a few hundred ms.
    extra.includes('health:') ? extra : `health: { latencyMs: { warning: 5000, critical: 10000 } }\n${extra}`,
  ].join('\n');
}
const fleetShards = () => fleet.shards.map((s) => ({ id: s.id, primary: s.primary.url(), replicas: s.replicas.map((r) => r.url()) }));

function cli(args: string[], file = configFile) {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [BIN, 'health', '--config', file, ...args], {
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1' },
    timeout: 30_000,
  });
  const out = { code: r.status, stdout: r.stdout, stderr: r.stderr, ms: Date.now() - t0 };
  for (const s of secrets()) {
    assert.ok(!out.stdout.includes(s) && !out.stderr.includes(s), `a password leaked in: ${args.join(' ')}`);
  }
  return out;
}

const server = (r: HealthReport, shard: string, role: 'primary' | 'replica'): ServerReport =>
  r.servers.find((s) => s.shard === shard && s.role === role)!;
const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

async function eventually(what: string, fn: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** The replica has replayed everything its primary has written so far. */
async function caughtUp(primary: ServerHandle, replica: ServerHandle): Promise<void> {
  const lsn = (await primary.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn'))[0]!.lsn;
  await eventually('the replica to catch up', async () => {
    const [row] = await replica.query<{ ok: boolean }>('SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok', [lsn]);
    return row?.ok === true;
  });
}

before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'shardctl-health-'));
  fleet = await startFleet({ shards: 2, replicas: 1 });
  for (const s of fleet.shards) await s.primary.query('CREATE TABLE t (tenant_id int, payload text)');
  configFile = path.join(dir, 'shardctl.yaml');
  writeFileSync(configFile, configText(fleetShards()));
  config = loadConfig(configFile);
  // A host that takes the TCP connection and never says a word: a hung server or a blackhole.
  blackhole = net.createServer((sock) => {
    held.push(sock);
    sock.on('error', () => undefined);
  });
  await new Promise<void>((res) => blackhole.listen(0, '127.0.0.1', res));
  const probe = net.createServer();
  await new Promise<void>((res) => probe.listen(0, '127.0.0.1', res));
  closedPort = (probe.address() as net.AddressInfo).port;
  await new Promise((res) => probe.close(res));
});

after(async () => {
  for (const s of held) s.destroy();
  blackhole?.close();
  await fleet?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('a healthy fleet is OK (exit 0), fast, and an absent catalog is OK with a note', async (t) => {
  const r = await health(config);
  assert.equal(r.status, 'ok', JSON.stringify(r.problems));
  assert.equal(r.servers.length, 4);
  for (const s of r.servers) {
    assert.ok(s.up && s.facts, `${s.shard} ${s.role} up`);
    assert.equal(s.facts.inRecovery, s.role === 'replica');
    assert.match(s.url, /^postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\/app$/);
  }
  const replica = server(r, 's0', 'replica');
  assert.equal(replica.lag?.streaming, true);
  assert.equal(replica.lag?.seconds, 0);
  assert.ok(replica.lag?.primaryView, "the primary's pg_stat_replication row is matched through the slot");
  assert.ok(server(r, 's0', 'primary').facts!.slots.length >= 1);
  assert.equal(r.catalog?.present, false);
  assert.equal(r.catalog?.status, 'ok');
  assert.match(r.catalog!.checks[0]!.message, /no catalog yet/);
  assert.ok(r.durationMs < 1000, `engine took ${r.durationMs} ms`);

  const c = cli([]);
  assert.equal(c.code, 0, c.stderr);
  assert.match(c.stdout, /^OK s0 primary postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\/app: /m);
  assert.match(c.stdout, /^OK: 2 shards, 4 servers; checked in \d+ ms$/m);
  t.diagnostic(`engine ${Math.round(r.durationMs)} ms; CLI wall ${c.ms} ms (node startup included)`);
});

test('--quiet prints nothing at all when healthy', () => {
  const c = cli(['--quiet']);
  assert.equal(c.code, 0);
  assert.equal(c.stdout, '');
  assert.equal(c.stderr, '');
});

test('--json is the report', () => {
  const c = cli(['--json']);
  assert.equal(c.code, 0, c.stderr);
  const doc = JSON.parse(c.stdout) as HealthReport;
  assert.equal(doc.status, 'ok');
  assert.equal(doc.servers.length, 4);
  assert.ok(!/postgres:\/\/[^:/]*:[^*]/.test(c.stdout), 'every URL redacted');
});

let exposition = '';

test('--prometheus: valid exposition, conventional names and labels, no credentials', () => {
  const c = cli(['--prometheus']);
  assert.equal(c.code, 0, c.stderr);
  exposition = c.stdout;
  const families = parseProm(c.stdout);
  const byName = new Map(families.map((f) => [f.name, f]));
  for (const name of Object.keys(METRIC_HELP)) {
    const f = byName.get(name);
    assert.ok(f, `${name} exported`);
    assert.equal(f.type, 'GAUGE');
    assert.ok(f.help.length > 10);
    assert.ok(f.metrics.length > 0, `${name} has samples`);
    for (const m of f.metrics) assert.ok(Number.isFinite(Number(m.value)), `${name} value ${m.value}`);
  }
  for (const name of Object.keys(COUNTER_HELP)) {
    const f = byName.get(name);
    assert.ok(f, `${name} exported`);
    assert.equal(f.type, 'COUNTER');
    assert.match(name, /_total$/);
    assert.equal(f.metrics.length, 4, `${name}: one sample per server`);
    for (const m of f.metrics) assert.ok(Number(m.value) >= 0, `${name} value ${m.value}`);
  }
  for (const f of families) assert.match(f.name, /^shardctl_[a-z_]+$/);
  assert.ok(!/_ms\b|_milliseconds|_kb\b|_mb\b/.test(c.stdout), 'base units only');
  const up = byName.get('shardctl_up')!;
  assert.equal(up.metrics.length, 4);
  for (const m of up.metrics) {
    assert.deepEqual(Object.keys(m.labels ?? {}).sort(), ['host', 'role', 'shard']);
    assert.match(m.labels!.host!, /^127\.0\.0\.1:\d+$/);
    assert.equal(m.value, '1');
  }
  const lag = byName.get('shardctl_replication_lag_bytes')!;
  assert.deepEqual(lag.metrics.map((m) => m.labels!.role), ['replica', 'replica']);
  assert.equal(byName.get('shardctl_catalog_consistent')!.metrics[0]!.value, '1');
  assert.ok(!c.stdout.includes('postgres://') && !c.stdout.includes('@'), 'no connection strings in metrics');
});

test('monitoring assets only use metrics the exporter exports', () => {
  assert.ok(exposition, 'needs the --prometheus case');
  const exported = new Set(parseProm(exposition).map((f) => f.name));
  const namesIn = (expr: string) => expr.match(/\bshardctl_[a-z_]+\b/g) ?? [];
  // No promtool on npm or Debian here: a parse of the files plus these expression checks instead.
  const sane = (where: string, expr: string) => {
    let depth = 0;
    for (const ch of expr) {
      depth += ch === '(' ? 1 : ch === ')' ? -1 : 0;
      assert.ok(depth >= 0, `${where}: unbalanced parentheses`);
    }
    assert.equal(depth, 0, `${where}: unbalanced parentheses`);
    for (const m of expr.matchAll(/\b(shardctl_[a-z_]+_total)\b/g)) {
      assert.match(expr.slice(0, m.index), /\b(rate|irate|increase)\($/, `${where}: the counter ${m[1]} is used outside rate()`);
    }
  };

  const rules = parseYaml(readFileSync(repoPath('monitoring/prometheus-rules.yml'), 'utf8')) as {
    groups: { name: string; rules: { alert: string; expr: string; for: string; labels: { severity: string }; annotations: { summary: string } }[] }[];
  };
  assert.ok(rules.groups.length > 0);
  let alerts = 0;
  for (const g of rules.groups) {
    assert.ok(g.name && g.rules.length > 0);
    for (const rule of g.rules) {
      alerts++;
      assert.match(rule.alert, /^Shardctl[A-Za-z]+$/);
      assert.match(rule.for, /^\d+[smh]$/);
      assert.ok(['warning', 'critical'].includes(rule.labels.severity), rule.alert);
      assert.ok(rule.annotations.summary, rule.alert);
      assert.ok(namesIn(rule.expr).length > 0, rule.alert);
      sane(rule.alert, rule.expr);
      for (const n of namesIn(rule.expr)) assert.ok(exported.has(n), `${rule.alert}: ${n} is not exported`);
    }
  }
  assert.ok(alerts >= 10);

  const dash = JSON.parse(readFileSync(repoPath('monitoring/grafana-dashboard.json'), 'utf8')) as {
    title: string;
    templating: { list: { name: string; query?: unknown }[] };
    panels: { id: number; title: string; targets: { expr: string }[] }[];
  };
  assert.ok(dash.title);
  assert.ok(dash.templating.list.some((v) => v.name === 'shard'), 'a shard variable');
  assert.ok(dash.panels.length >= 8);
  assert.equal(new Set(dash.panels.map((p) => p.id)).size, dash.panels.length);
  for (const p of dash.panels) {
    assert.ok(p.targets.length > 0, p.title);
    for (const tg of p.targets) {
      sane(p.title, tg.expr);
      for (const n of namesIn(tg.expr)) assert.ok(exported.has(n), `${p.title}: ${n} is not exported`);
    }
  }
  const exprOf = (title: string) => dash.panels.find((p) => p.title === title)?.targets.map((t) => t.expr).join(' ') ?? '';
  assert.match(exprOf('Writes per second by shard'), /rate\(shardctl_database_rows_inserted_total/);
  assert.match(exprOf('Reads per second by shard'), /rate\(shardctl_database_rows_fetched_total/);
  const lagRule = rules.groups.flatMap((g) => g.rules).find((r) => r.alert === 'ShardctlReplicationLag')!;
  assert.equal(lagRule.expr, `shardctl_replication_lag_seconds > ${config.health.lagSeconds.warning}`, 'the rule and the default agree');
});

test('per-shard commits, writes and reads are counters that grow with the traffic; the storage alert says when it is off', async () => {
  const counter = (r: HealthReport, fact: 'commits' | 'rowsInserted' | 'rowsUpdated' | 'rowsDeleted' | 'rowsFetched') =>
    server(r, 's1', 'primary').facts!.activity![fact];
  const before = await health(config, { catalog: false });
  const s1 = fleet.shards[1]!.primary;
  await s1.query(`INSERT INTO t SELECT g, 'x' FROM generate_series(1, 500) g`);
  await s1.query(`UPDATE t SET payload = 'y' WHERE tenant_id <= 200`);
  await s1.query(`DELETE FROM t WHERE tenant_id <= 50`);
  await s1.query(`CREATE INDEX IF NOT EXISTS t_tenant ON t (tenant_id)`);
  await s1.query(`SET enable_seqscan = off; SELECT * FROM t WHERE tenant_id BETWEEN 100 AND 400`);
  // pg_stat_database is updated when a backend reports its statistics (at most once a second while idle)
  let after = before;
  await eventually('the statistics to arrive', async () => {
    after = await health(config, { catalog: false });
    return counter(after, 'rowsDeleted') - counter(before, 'rowsDeleted') >= 50;
  });
  assert.ok(counter(after, 'rowsInserted') - counter(before, 'rowsInserted') >= 500);
  assert.ok(counter(after, 'rowsUpdated') - counter(before, 'rowsUpdated') >= 200);
  assert.ok(counter(after, 'rowsFetched') - counter(before, 'rowsFetched') >= 250, 'the index scan read its rows');
  assert.ok(counter(after, 'commits') - counter(before, 'commits') >= 4);
  const families = new Map(parseProm(await prometheusText(after)).map((f) => [f.name, f]));
  const inserted = families.get('shardctl_database_rows_inserted_total')!.metrics.find((m) => m.labels!.shard === 's1' && m.labels!.role === 'primary')!;
  assert.equal(Number(inserted.value), counter(after, 'rowsInserted'));
  await s1.query('DROP INDEX t_tenant; TRUNCATE t');

  const capacity = (r: HealthReport) => server(r, 's0', 'primary').checks.find((c) => c.check === 'capacity')!;
  assert.match(capacity(after).message, /of 1\.0 GB capacity \(\d+%\)/);
  const bare = parseConfig(configText(fleetShards()).replace(/\n {4}capacity: 1GB/g, ''), 'no-capacity.yaml');
  const r = await health(bare, { catalog: false });
  assert.equal(r.status, 'ok', 'a missing capacity is not a fault');
  assert.match(capacity(r).message, /no capacity configured, so the 80% storage alert is off \(set capacity: for this shard\)/);
  assert.equal(bare.health.lagSeconds.warning, 10, "the location design's lag alert is the default");
});

test('--textfile writes the exposition atomically and leaves no temp file', () => {
  const out = mkdtempSync(path.join(dir, 'textfile-'));
  const file = path.join(out, 'shardctl.prom');
  const c = cli(['--textfile', file, '--quiet']);
  assert.equal(c.code, 0, c.stderr);
  assert.equal(c.stdout, '');
  assert.deepEqual(readdirSync(out), ['shardctl.prom']);
  const names = parseProm(readFileSync(file, 'utf8')).map((f) => f.name);
  assert.ok(names.includes('shardctl_up') && names.includes('shardctl_health_last_run_timestamp_seconds'));
  const again = cli(['--textfile', file, '--quiet']); // replaces in place
  assert.equal(again.code, 0);
  assert.deepEqual(readdirSync(out), ['shardctl.prom']);
});

test('a primary in recovery and a replica that is not are CRITICAL role problems', async () => {
  const [s0] = fleet.shards;
  const swapped = parseConfig(configText([{ id: 's0', primary: s0!.replicas[0]!.url(), replicas: [s0!.primary.url()] }]), 'swapped.yaml');
  const r = await health(swapped, { catalog: false });
  assert.equal(r.status, 'critical');
  assert.equal(r.catalog, null);
  const roles = r.problems.filter((p) => p.check === 'role');
  assert.equal(roles.length, 2);
  assert.match(roles.find((p) => p.role === 'primary')!.message, /in recovery/);
  assert.match(roles.find((p) => p.role === 'replica')!.message, /not in recovery/);
});

test('a hung host and a closed port are reported down within the timeout, not a hang', async () => {
  const hung = `postgres://app:hunter2secret@127.0.0.1:${(blackhole.address() as net.AddressInfo).port}/app`;
  const closed = `postgres://app:hunter2secret@127.0.0.1:${closedPort}/app`;
  const text = configText([...fleetShards(), { id: 's2', primary: hung, replicas: [closed] }], `catalog: ${hung}\n`);
  const file = path.join(dir, 'unreachable.yaml');
  writeFileSync(file, text);
  const r = await health(parseConfig(text), { timeoutMs: 700 });
  assert.ok(r.durationMs < 700 + 800, `took ${r.durationMs} ms with a 700 ms timeout`);
  assert.equal(r.status, 'critical');
  const p = server(r, 's2', 'primary');
  assert.equal(p.up, false);
  assert.equal(p.status, 'critical');
  assert.match(p.error!, /timed out after 700 ms while connecting/);
  const rep = server(r, 's2', 'replica');
  assert.equal(rep.status, 'warning');
  assert.equal(rep.error, 'connection refused');
  assert.equal(r.catalog?.status, 'critical');
  assert.match(r.catalog!.checks[0]!.message, /catalog unreachable \(timed out/);
  assert.equal(server(r, 's0', 'primary').status, 'ok');

  const c = cli(['--timeout', '700ms', '--json'], file);
  assert.equal(c.code, 2, c.stderr);
  const doc = JSON.parse(c.stdout) as HealthReport;
  assert.ok(doc.durationMs < 700 + 800, `CLI run took ${doc.durationMs} ms`);
  assert.ok(!c.stdout.includes('hunter2secret'));
  const human = cli(['--timeout', '700ms'], file);
  assert.equal(human.code, 2);
  assert.match(human.stdout, /^CRITICAL s2 primary postgres:\/\/app:\*\*\*@127\.0\.0\.1:\d+\/app: down \(timed out after 700 ms while connecting\)$/m);
  assert.match(human.stdout, /^WARNING s2 replica postgres:\/\/app:\*\*\*@127\.0\.0\.1:\d+\/app: down \(connection refused\)$/m);
  assert.match(human.stdout, /^CRITICAL catalog postgres:\/\/app:\*\*\*@/m);
  assert.match(human.stdout, /^CRITICAL: 3 shards, 6 servers \(2 down\); 2 critical, 1 warning; checked in \d+ ms$/m);
  assert.ok(!human.stdout.includes('hunter2secret'));
});

test('a wrong password is down with the reason, and never echoes the password', async () => {
  const [s0] = fleet.shards;
  const wrong = new URL(s0!.primary.url());
  wrong.password = 'not-the-password-xyz';
  const r = await health(parseConfig(configText([{ id: 's0', primary: wrong.toString(), replicas: [] }])), { catalog: false });
  const p = server(r, 's0', 'primary');
  assert.equal(p.up, false);
  assert.equal(p.error, 'password authentication failed');
  assert.ok(!JSON.stringify(r).includes('not-the-password-xyz'));
});

test('a textfile that cannot be written is UNKNOWN, after the report', () => {
  const c = cli(['--textfile', path.join(dir, 'no-such-dir', 'shardctl.prom')]);
  assert.equal(c.code, 3);
  assert.match(c.stdout, /^OK: 2 shards/m);
  assert.match(c.stderr, /cannot write the metrics textfile \(ENOENT\)/);
});

test('bad usage and bad config are UNKNOWN (exit 3)', () => {
  const bad = path.join(dir, 'bad.yaml');
  writeFileSync(bad, `source: ${fleet.source.url()}\nstrategy: { kind: jump, key: tenant_id }\nshards: []\n`);
  const c = cli([], bad);
  assert.equal(c.code, 3);
  assert.match(c.stderr, /bad\.yaml/);
  assert.equal(cli([], path.join(dir, 'missing.yaml')).code, 3);
  const flag = cli(['--no-such-flag']);
  assert.equal(flag.code, 3);
  assert.match(flag.stderr, /unknown option '--no-such-flag'/);
  assert.equal(cli(['--timeout', 'soon']).code, 3);
  assert.equal(cli(['--json', '--prometheus']).code, 3);
});

test('catalog: placements on an unknown shard and leftover moves are flagged', async () => {
  const catalog = await Catalog.open(fleet.source.url());
  const q = (sql: string) => catalog.client.query(sql);
  try {
    await q(`INSERT INTO shardctl.shards (id, position, primary_url) VALUES ('s0', 0, 'x'), ('s1', 1, 'x'), ('s9', 2, 'x')`);
    await q(`INSERT INTO shardctl.placements (unit, shard) VALUES ('1', 's0'), ('42', 's9'), ('43', 's9')`);
    await q(`INSERT INTO shardctl.moves (unit, from_shard, to_shard, step) VALUES ('7', 's0', 's1', 'copy')`);
    const r = await health(config);
    const cat = r.catalog!;
    assert.equal(cat.status, 'critical');
    assert.deepEqual(cat.unknownShards, ['s9']);
    assert.deepEqual(cat.strayPlacements, [{ shard: 's9', units: 2, sample: ['42', '43'] }]);
    assert.equal(cat.moveCount, 1);
    assert.equal(cat.runInProgress, false);
    const msgs = cat.checks.map((c) => c.message).join('\n');
    assert.match(msgs, /2 placements on shard s9, which is not configured \(units: 42, 43\)/);
    assert.match(msgs, /1 unit left fenced or half-moved by an interrupted run \(7 s0→s1 at copy\)/);
    const c = cli([]);
    assert.equal(c.code, 2);
    assert.match(c.stdout, /^CRITICAL catalog postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\/app: 2 placements on shard s9/m);
    const prom = parseProm(await prometheusText(r));
    assert.equal(prom.find((f) => f.name === 'shardctl_catalog_consistent')!.metrics[0]!.value, '0');
    assert.equal(prom.find((f) => f.name === 'shardctl_catalog_moves_in_flight')!.metrics[0]!.value, '1');

    // While a run holds the lock, the move is in flight: a warning, not a leftover.
    await q(`DELETE FROM shardctl.placements WHERE shard = 's9'`);
    await q(`DELETE FROM shardctl.shards WHERE id = 's9'`);
    await catalog.lock('rebalance', {});
    const during = await health(config);
    assert.equal(during.catalog!.status, 'warning');
    assert.equal(during.catalog!.runInProgress, true);
    assert.match(during.catalog!.checks[0]!.message, /a rebalance is running: 1 unit in flight/);
  } finally {
    await q(`DELETE FROM shardctl.moves`).catch(() => undefined);
    await catalog.close();
  }
  const clean = await health(config);
  assert.equal(clean.catalog!.status, 'ok');
  assert.match(clean.catalog!.checks[0]!.message, /consistent: 2 shards/);
});

test('replay paused on a replica while the primary writes: lag reported, thresholds from flags over config', async () => {
  const [, s1] = fleet.shards;
  const primary = s1!.primary;
  const replica = s1!.replicas[0]!;
  await primary.query(`INSERT INTO t SELECT g, 'before' FROM generate_series(1, 10) g`);
  await caughtUp(primary, replica);
  await replica.query('SELECT pg_wal_replay_pause()');
  try {
    await primary.query(`INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g`);
    await sleep(1100);
    const r = await health(config);
    const lag = server(r, 's1', 'replica').lag!;
    assert.equal(lag.paused, true);
    assert.ok(lag.bytes! > 1_000_000, `lag bytes ${lag.bytes}`);
    assert.ok(lag.seconds! >= 1, `lag seconds ${lag.seconds}`);
    assert.ok(lag.primaryView && lag.primaryView.replayLagBytes! > 0, "the primary's view shows it too");
    assert.equal(server(r, 's0', 'replica').lag!.bytes, 0, 'the other shard is unaffected');

    const relaxed = ['--lag-warning', '100000s', '--lag-critical', '100000s'];
    assert.equal(cli(relaxed).code, 0);
    const warn = cli([...relaxed, '--lag-bytes-warning', '1']);
    assert.equal(warn.code, 1);
    assert.match(warn.stdout, /^WARNING s1 replica postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\/app: lag [\d.]+ s, [\d.]+ MB behind the primary \(replay paused\)$/m);
    assert.equal(cli([...relaxed, '--lag-bytes-warning', '1', '--lag-bytes-critical', '1MB']).code, 2);
    assert.equal(cli([...relaxed, '--lag-bytes-critical', '1MB']).code, 3, 'a critical level under the (default) warning one is refused: UNKNOWN');
    assert.equal(cli(['--lag-warning', '500ms', '--lag-critical', '100000s']).code, 1, 'seconds lag graded too');

    // flags > config > defaults
    const strict = path.join(dir, 'strict.yaml');
    writeFileSync(
      strict,
      configText(fleetShards(), 'health: { latencyMs: { warning: 5000, critical: 10000 }, lagBytes: { warning: 1 }, lagSeconds: { warning: 100000, critical: 100000 } }\n'),
    );
    assert.equal(cli([], strict).code, 1, 'config threshold applies');
    assert.equal(cli(['--lag-bytes-warning', '1GB'], strict).code, 0, 'the flag beats the config');
    const overridden = await health(loadConfig(strict), { thresholds: { lagBytes: { warning: 2 ** 40 } } });
    assert.equal(overridden.thresholds.lagBytes.warning, 2 ** 40);
    assert.equal(overridden.thresholds.lagBytes.critical, 1024 ** 3, 'unset levels keep the default');
  } finally {
    await replica.query('SELECT pg_wal_replay_resume()');
  }
  await caughtUp(primary, replica);
  const after = await health(config);
  assert.equal(server(after, 's1', 'replica').lag!.seconds, 0);
  assert.equal(after.status, 'ok', JSON.stringify(after.problems));
});

test('a replica down is WARNING (exit 1)', async () => {
  const replica = fleet.shards[0]!.replicas[0]!;
  await replica.stop('fast');
  try {
    const c = cli([]);
    assert.equal(c.code, 1, c.stdout + c.stderr);
    assert.match(c.stdout, /^WARNING s0 replica postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\/app: down \(connection refused\)$/m);
    assert.match(c.stdout, /^WARNING: 2 shards, 4 servers \(1 down\); 1 warning; checked in \d+ ms$/m);
    const q = cli(['--quiet']);
    assert.equal(q.code, 1);
    assert.equal(q.stdout.trim().split('\n').length, 2, 'quiet: the problem and the summary only');
  } finally {
    await replica.start();
  }
});

test('a primary down is CRITICAL (exit 2), reported within the timeout', async () => {
  const primary = fleet.shards[0]!.primary;
  await primary.stop('immediate');
  try {
    const r = await health(config, { timeoutMs: 1500 });
    assert.ok(r.durationMs < 1500, `took ${r.durationMs} ms`);
    assert.equal(r.status, 'critical');
    assert.equal(server(r, 's0', 'primary').status, 'critical');
    assert.equal(r.catalog?.status, 'critical', 'a catalog shard is unreachable');
    const c = cli(['--timeout', '1500ms']);
    assert.equal(c.code, 2);
    assert.match(c.stdout, /^CRITICAL s0 primary postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\/app: down \(connection refused\)$/m);
    const prom = cli(['--prometheus', '--quiet']);
    assert.equal(prom.code, 2);
    const up = parseProm(prom.stdout).find((f) => f.name === 'shardctl_up')!;
    assert.equal(up.metrics.find((m) => m.labels!.shard === 's0' && m.labels!.role === 'primary')!.value, '0');
    assert.match(prom.stderr, /^CRITICAL s0 primary/m, 'problems still reach cron on stderr');
  } finally {
    await primary.start();
  }
});

test('a promoted replica is a CRITICAL role problem', async () => {
  const replica = fleet.shards[1]!.replicas[0]!;
  await replica.promote();
  const c = cli([]);
  assert.equal(c.code, 2);
  assert.match(c.stdout, /^CRITICAL s1 replica postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\/app: configured as a replica but is not in recovery/m);
});
