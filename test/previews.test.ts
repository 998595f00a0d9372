import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { latLngToCell } from 'h3-js';
import { startServer, type ServerHandle } from '../harness/fleet/index.js';
import { runCli } from './helpers/cli.js';
import { sql } from './helpers/fleet.js';

/**
 * Previews change nothing, anywhere: the config file stays byte-identical and the catalog and every
 * server keep their state; an --apply whose preflight fails leaves the file as it was. One real
 * server holds the catalog (and a spare database for add-shard); the shards' URLs point at a port
 * nothing listens on, so any attempt to reach a shard fails the command.
 */
const UNREACHABLE = (db: string) => `postgres://app:secret@127.0.0.1:1/${db}`;

describe('previews change nothing; --apply writes only after its preflight', () => {
  let dir: string;
  let server: ServerHandle;
  let catalog: string;
  let spare: string;
  let fresh: string;

  /** Every catalog table's rows, as text: the oracle that a command left the catalog as it was. */
  async function catalogState(url = catalog): Promise<string> {
    const tables = await sql<{ t: string }>(url, `SELECT tablename AS t FROM pg_tables WHERE schemaname = 'shardctl' ORDER BY 1`);
    const out: string[] = [];
    for (const { t } of tables) {
      const [r] = await sql<{ j: string }>(url, `SELECT coalesce(json_agg(x ORDER BY x::text), '[]')::text AS j FROM shardctl."${t}" x`);
      out.push(`${t}: ${r!.j}`);
    }
    return out.join('\n');
  }

  function writeConfig(name: string, text: string): string {
    const file = path.join(dir, name);
    writeFileSync(file, text, { mode: 0o600 });
    return file;
  }

  const jumpConfig = (cat: string, pins = '') => `# a comment that must survive
source: ${cat}
catalog: ${cat}
strategy: { kind: jump, key: restaurant_id${pins} }
shards:
  - { id: s0, primary: "${UNREACHABLE('s0')}" }
  - { id: s1, primary: "${UNREACHABLE('s1')}" }
tables:
  - { name: restaurants, key: id }
`;

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'shardctl-previews-'));
    chmodSync(dir, 0o755); // the server may run as another OS user
    server = await startServer({ name: 'one', dir });
    catalog = server.url();
    const at = (db: string) => {
      const u = new URL(catalog);
      u.pathname = `/${db}`;
      return u.toString();
    };
    await sql(catalog, 'CREATE DATABASE spare');
    await sql(catalog, 'CREATE DATABASE fresh');
    spare = at('spare');
    fresh = at('fresh');
    // a catalog with placements: a plain `rebalance --apply` creates the schema and records the topology
    // (it then fails on the unreachable shards, after the catalog exists)
    const seed = writeConfig('seed.yaml', jumpConfig(catalog));
    runCli(['rebalance', '--apply', '--config', seed]);
    assert.ok((await sql(catalog, `SELECT to_regclass('shardctl.placements') AS t`))[0].t, 'the catalog exists');
    for (let t = 1; t <= 12; t++) await sql(catalog, 'INSERT INTO shardctl.placements (unit, shard) VALUES ($1, $2)', [String(t), t % 2 ? 's0' : 's1']);
  });
  after(async () => {
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Runs a command and asserts the file is byte-identical and the catalog unchanged afterwards. */
  async function unchanged(file: string, args: string[], status: number) {
    const text = readFileSync(file);
    const state = await catalogState();
    const r = runCli([...args, '--config', file]);
    assert.equal(r.status, status, r.stdout + r.stderr);
    assert.ok(readFileSync(file).equals(text), `${args.join(' ')} left ${file} as it was`);
    assert.equal(await catalogState(), state, `${args.join(' ')} left the catalog as it was`);
    assert.doesNotMatch(r.stdout + r.stderr, /secret|internal error/);
    return r;
  }

  it('pin and unpin without --apply show the plan and write nothing', async () => {
    const file = writeConfig('pin.yaml', jumpConfig(catalog, ', pins: { "3": s0 }'));
    const pin = await unchanged(file, ['pin', '4', 's0'], 0);
    assert.match(pin.stdout, /Apply with: shardctl pin 4 s0 --apply/);
    assert.match(pin.stdout, /nothing was changed/);
    const unpin = await unchanged(file, ['unpin', '3'], 0);
    assert.match(unpin.stderr, /preview: tenant 3 unpinned \(.* not changed\)/);
    // a pin already as asked is not an edit
    await unchanged(file, ['pin', '3', 's0'], 0);
  });

  it('pin --apply whose preflight fails (the catalog cannot be reached) leaves the file untouched: exit 3', async () => {
    const file = writeConfig('pin-apply.yaml', jumpConfig(catalog).replace(/^catalog: .*$/m, `catalog: ${UNREACHABLE('cat')}`));
    const r = await unchanged(file, ['pin', '4', 's0', '--apply'], 3);
    assert.match(r.stderr, /catalog .*cannot connect/);
  });

  it('mapping set --status read-only without --apply connects to no shard and writes nothing', async () => {
    const cell = latLngToCell(37.5665, 126.978, 3);
    const other = latLngToCell(35.1796, 129.0756, 3);
    // on a catalog no run has created yet: the preview reads it and creates nothing
    const file = writeConfig('h3.yaml', `source: ${fresh}
catalog: ${fresh}
strategy:
  kind: h3
  defaultShard: s0
  mapping:
    - { cell: ${cell}, shard: s0 }
shards:
  - { id: s0, primary: "${UNREACHABLE('s0')}" }
  - { id: s1, primary: "${UNREACHABLE('s1')}" }
tables: [ { name: locations, lat: latitude, lng: longitude } ]
`);
    const r = await unchanged(file, ['mapping', 'set', other, 's1', '--status', 'read-only'], 0);
    assert.match(r.stderr, /preview: cell \w+ mapped to s1 \(read-only\) \(.* not changed\)/);
    await unchanged(file, ['mapping', 'set', cell, 's1', '--status', 'read-only', '--region', 'x'], 0);
    assert.deepEqual(await sql(fresh, `SELECT nspname FROM pg_namespace WHERE nspname = 'shardctl'`), []);
  });

  it('add-shard without --apply checks the server, creates nothing on it and writes nothing', async () => {
    const file = writeConfig('add.yaml', jumpConfig(catalog));
    const r = await unchanged(file, ['add-shard', '--id', 's2', '--primary', spare], 0);
    assert.match(r.stdout + r.stderr, /nothing was changed/);
    assert.deepEqual(await sql(spare, `SELECT tablename FROM pg_tables WHERE schemaname = 'public'`), [], 'no table created on the new shard');
    // and a new server that cannot be reached is a refusal, the file as it was
    await unchanged(file, ['add-shard', '--id', 's2', '--primary', UNREACHABLE('s2')], 3);
  });

  it('remove-shard and rebalance without --apply write nothing; a preview on a fresh catalog creates no schema', async () => {
    const file = writeConfig('remove.yaml', jumpConfig(catalog));
    const r = await unchanged(file, ['remove-shard', 's1'], 0);
    assert.match(r.stdout, /nothing was changed/);
    await unchanged(file, ['rebalance'], 0);
    const onFresh = writeConfig('fresh.yaml', jumpConfig(fresh));
    const text = readFileSync(onFresh);
    const plan = runCli(['rebalance', '--config', onFresh]);
    assert.equal(plan.status, 0, plan.stderr);
    assert.ok(readFileSync(onFresh).equals(text));
    assert.deepEqual(await sql(fresh, `SELECT nspname FROM pg_namespace WHERE nspname = 'shardctl'`), [], 'no catalog schema created by a preview');
  });
});
