import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { repoRoot } from './helpers/paths.js';

describe('the package', () => {
  it('exports the library by its name, as application code imports it', () => {
    const script = `
      const m = await import('shardctl');
      const names = ['tenantKey64', 'jumpHash', 'shardCell', 'loadConfig', 'createRouter', 'plan', 'migrate', 'verify', 'rebalance', 'addShard', 'health'];
      const missing = names.filter((n) => typeof m[n] !== 'function');
      if (missing.length) throw new Error('missing: ' + missing);
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
});
