import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { loadConfig, parseConfig, UserError } from '../../src/index.js';
import { repoPath } from '../helpers/paths.js';

const dir = repoPath('test/configs');
const env = { S0_PASSWORD: 's3cr3t-pw' };
const snapshotFile = `${dir}/expected.json`;
const snapshot: Record<string, string[]> = JSON.parse(readFileSync(snapshotFile, 'utf8'));
const corpus = readdirSync(dir).filter((f) => f.startsWith('bad-')).sort();

function problems(file: string): string[] {
  try {
    loadConfig(`${dir}/${file}`, { env });
  } catch (e) {
    assert.ok(e instanceof UserError, `${file}: must fail with a UserError, got ${e}`);
    assert.equal(e.exitCode, 2);
    return [e.message, ...e.details].map((l) => l.replace(`${dir}/`, ''));
  }
  assert.fail(`${file}: loaded without error`);
}

describe('config corpus: every broken config is refused with file and key path', () => {
  it('has at least 25 broken configs, each with a snapshot', () => {
    assert.ok(corpus.length >= 25);
    if (process.env.UPDATE_SNAPSHOTS) {
      writeFileSync(snapshotFile, `${JSON.stringify(Object.fromEntries(corpus.map((f) => [f, problems(f)])), null, 2)}\n`);
    }
    assert.deepEqual(Object.keys(snapshot).sort(), corpus);
  });

  for (const file of corpus) {
    it(file, () => {
      const lines = problems(file);
      assert.deepEqual(lines, snapshot[file]);
      for (const l of lines) {
        assert.match(l, new RegExp(`^${file.replace('.', '\\.')}: `), 'every line names the file');
        assert.doesNotMatch(l, /s3cr3t-pw|topsecret|hunter2|srcpw/, 'no password in any message');
      }
    });
  }

  it('reports several problems together', () => {
    const lines = problems('bad-31-many-problems.yaml');
    assert.equal(lines.length, 7, 'a summary and six problems: shape errors and cross-key errors together');
    assert.ok(lines.some((l) => l.endsWith('shards[1].id: duplicate shard id "s0"')));
  });
});

describe('config loading', () => {
  it('loads a good config: ${VAR} interpolation, defaults, parents-first tables', () => {
    const c = loadConfig(`${dir}/good-jump.yaml`, { env });
    assert.equal(c.shards[0]!.primary, 'postgres://app:s3cr3t-pw@shard0:5432/pos');
    assert.equal(c.catalog, c.source, 'catalog defaults to the source');
    assert.deepEqual(c.tables.map((t) => t.route.kind), ['key', 'key', 'via', 'reference']);
    assert.deepEqual(c.tables[1]!.route, { kind: 'key', column: 'restaurant_id' });
    assert.deepEqual(c.tables[2]!.route, { kind: 'via', column: 'order_id', parent: 'public.orders', parentColumn: 'id' });
    assert.equal(c.health.lagSeconds.warning, 10);
    assert.equal(c.shards[1]!.capacityBytes, 2 * 1024 ** 3);
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.shards[0]));
  });

  it('keeps $${ as a literal and does not re-expand values taken from the environment', () => {
    const text = readFileSync(`${dir}/good-jump.yaml`, 'utf8').replace('app:${S0_PASSWORD}@', () => 'app:$${S0_PASSWORD}@');
    assert.equal(parseConfig(text, 'x.yaml', { env }).shards[0]!.primary, 'postgres://app:${S0_PASSWORD}@shard0:5432/pos');
    const c = loadConfig(`${dir}/good-jump.yaml`, { env: { S0_PASSWORD: 'a${HOME}' } });
    assert.equal(c.shards[0]!.primary, 'postgres://app:a${HOME}@shard0:5432/pos');
  });

  it('the CLI prints one clear line per problem, exit 2, no stack trace, no password', () => {
    const r = spawnSync(process.execPath, [repoPath('bin/shardctl.js'), 'route', '1', '--config', `${dir}/bad-31-many-problems.yaml`], {
      encoding: 'utf8',
      env: { ...process.env, ...env },
    });
    assert.equal(r.status, 2);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /bad-31-many-problems\.yaml: 6 problems in the configuration/);
    assert.match(r.stderr, /shards\[0\]\.replicas\[0\]: expected string, received number/);
    assert.doesNotMatch(r.stderr, /\s+at\s+\S+\.js|topsecret|hunter2/);
  });

  it('a bad number in an option or its environment twin is exit 2 with one line, no stack trace', () => {
    const cli = (args: string[], extra: Record<string, string> = {}) =>
      spawnSync(process.execPath, [repoPath('bin/shardctl.js'), ...args], { encoding: 'utf8', env: { ...process.env, ...extra } });
    const top = cli(['plan', '--top', '0', '--config', `${dir}/good-jump.yaml`]);
    assert.equal(top.status, 2);
    assert.match(top.stderr, /--top must be a whole number of at least 1, got "0"/);
    const conc = cli(['migrate', '--dry-run', '--config', `${dir}/good-jump.yaml`], { ...env, SHARDCTL_MIGRATE_CONCURRENCY: 'two' });
    assert.equal(conc.status, 2, conc.stderr);
    assert.match(conc.stderr, /SHARDCTL_MIGRATE_CONCURRENCY="two" is invalid: --concurrency must be a whole number of at least 1, got "two"/);
    for (const r of [top, conc]) assert.doesNotMatch(r.stderr, /internal error|\s+at\s+\S+\.js/);
  });

  it('a missing config file is exit 2 with a hint', () => {
    const r = spawnSync(process.execPath, [repoPath('bin/shardctl.js'), 'route', '1'], {
      encoding: 'utf8',
      cwd: dir,
      env: { ...process.env, SHARDCTL_CONFIG: 'nope.yaml' },
    });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /nope\.yaml: cannot read the config file \(no such file\)/);
    assert.match(r.stderr, /hint: pass --config FILE or set SHARDCTL_CONFIG/);
  });
});
