import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import * as h3 from 'h3-js';
import { repoPath } from '../helpers/paths.js';

// Every cron `health`, CI gate and `route 42` is a new process: what the CLI loads before it knows the
// command is paid each time. The engine (driver, config parser, H3, orchestrators) loads when a
// command's action runs; --version, --help and usage errors load only the light part (src/basics.ts).

const dir = mkdtempSync(path.join(os.tmpdir(), 'shardctl-startup-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A module-loader hook that records every module the process loads, one URL a line, in `traceFile`. */
function tracer(traceFile: string): string {
  const hooks = path.join(dir, 'hooks.mjs');
  writeFileSync(
    hooks,
    `import { appendFileSync } from 'node:fs';
export async function load(url, context, next) { appendFileSync(${JSON.stringify(traceFile)}, url + '\\n'); return next(url, context); }\n`,
  );
  const register = path.join(dir, 'register.mjs');
  writeFileSync(register, `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`);
  return register;
}

/** The same for CommonJS: require() (h3-js, pg's insides) does not pass the ESM hook above. */
function requireTracer(traceFile: string): string {
  const file = path.join(dir, 'require-trace.cjs');
  writeFileSync(
    file,
    `const Module = require('node:module');
const { appendFileSync } = require('node:fs');
const load = Module._load;
Module._load = function (request, parent, isMain) {
  try { appendFileSync(${JSON.stringify(traceFile)}, Module._resolveFilename(request, parent, isMain) + '\\n'); } catch {}
  return load.apply(this, arguments);
};\n`,
  );
  return file;
}

/** Runs the built CLI; returns its exit code, stdout and the modules it loaded. */
function run(args: string[]): { status: number | null; stdout: string; loaded: string[] } {
  const trace = path.join(dir, `trace-${Math.random().toString(36).slice(2)}.txt`);
  writeFileSync(trace, '');
  const r = spawnSync(process.execPath, ['--require', requireTracer(trace), '--import', pathToFileURL(tracer(trace)).href, repoPath('bin/shardctl.js'), ...args], {
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1' },
  });
  return { status: r.status, stdout: r.stdout, loaded: readFileSync(trace, 'utf8').split('\n').filter(Boolean) };
}

const HEAVY_PACKAGES = ['pg', 'pg-logical-replication', 'h3-js', 'zod', 'yaml'];
const LIGHT_ENGINE = ['basics.js', 'errors.js', 'redact.js', 'config/units.js', 'db/pg-error.js'];

/** The engine modules and heavy packages among `loaded`: what a start-up without a command's action must not pay. */
function heavy(loaded: readonly string[]): string[] {
  const engine = `${pathToFileURL(repoPath('dist/src')).href}/`;
  return loaded.filter((url) => {
    if (url.startsWith(engine)) return !LIGHT_ENGINE.includes(url.slice(engine.length));
    return HEAVY_PACKAGES.some((p) => url.includes(`/node_modules/${p}/`));
  });
}

describe('CLI start-up', () => {
  it('sees the engine load when a command runs (the trace works)', () => {
    const r = run(['plan', '--config', path.join(dir, 'missing.yaml')]);
    assert.equal(r.status, 2, 'a missing config file is a config error');
    const h = heavy(r.loaded);
    assert.ok(h.some((u) => u.endsWith('/dist/src/config/load.js')), `engine not seen loading:\n${r.loaded.join('\n')}`);
    assert.ok(h.some((u) => u.includes('/node_modules/zod/')), 'the config validator loads for a command');
  });

  for (const args of [['--version'], ['--help'], ['health', '--help'], ['route', '--help'], ['no-such-command']]) {
    it(`shardctl ${args.join(' ')} does not load the engine`, () => {
      const r = run(args);
      assert.equal(r.status, args[0] === 'no-such-command' ? 2 : 0);
      assert.ok(r.loaded.some((u) => u.endsWith('/dist/commands/cli.js')), 'the CLI itself was traced');
      assert.deepEqual(heavy(r.loaded), []);
    });
  }

  it('shardctl route loads the config, the lookups and the topology reader, not the orchestrators', () => {
    // no server: the catalog's port refuses at once and route answers from the file (exit 0, a warning)
    const config = path.join(dir, 'jump.yaml');
    writeFileSync(
      config,
      `source: postgres://app@127.0.0.1:1/pos
strategy: { kind: jump, key: restaurant_id }
shards: [ { id: s0, primary: postgres://app@127.0.0.1:1/pos }, { id: s1, primary: postgres://app@127.0.0.1:1/pos } ]
tables: [ { name: restaurants, key: id } ]
`,
    );
    const r = run(['route', '1', '--config', config]);
    assert.equal(r.status, 0);
    assert.equal(r.stdout, '1\ts0\n');
    const engine = `${pathToFileURL(repoPath('dist/src')).href}/`;
    assert.ok(r.loaded.some((u) => u === `${engine}route-door.js`), 'route went through its door');
    const orchestrators = r.loaded.filter((u) => u === `${engine}index.js` || /\/dist\/src\/(migrate|verify|rebalance|online|plan|stream|health)\//.test(u));
    assert.deepEqual(orchestrators, []);
    assert.deepEqual(r.loaded.filter((u) => u.includes('/node_modules/h3-js/')), [], 'a jump config never needs H3');
  });

  it('shardctl route --lat --lng loads H3 when the config needs it, and answers the cell h3-js gives', () => {
    const config = path.join(dir, 'h3.yaml');
    writeFileSync(
      config,
      `source: postgres://app@127.0.0.1:1/geo
strategy: { kind: h3, defaultShard: kr, mapping: [ { cell: 831fb4fffffffff, shard: fr } ] }
shards: [ { id: kr, primary: postgres://a@127.0.0.1:1/db }, { id: fr, primary: postgres://a@127.0.0.1:1/db } ]
tables: [ { name: locations, lat: latitude, lng: longitude } ]
`,
    );
    const r = run(['route', '--lat', '48.85', '--lng', '2.35', '--config', config]);
    assert.equal(r.status, 0);
    // oracle: h3-js itself, the parent at resolution 3 of the point's resolution-12 cell (the seed's rule)
    const cell = h3.cellToParent(h3.latLngToCell(48.85, 2.35, 12), 3);
    assert.equal(cell, '831fb4fffffffff');
    assert.equal(r.stdout, `48.85,2.35\tcell ${cell}\tfr\n`);
    assert.ok(r.loaded.some((u) => u.includes('/node_modules/h3-js/')), 'the trace sees h3-js when it loads');
  });

  it('--version prints the package version, --help still lists every command', () => {
    const pkg = JSON.parse(readFileSync(repoPath('package.json'), 'utf8')) as { version: string };
    assert.equal(run(['--version']).stdout.trim(), pkg.version);
    const help = run(['--help']).stdout;
    for (const c of ['route', 'plan', 'migrate', 'cutover', 'rollback', 'verify', 'rebalance', 'add-shard', 'remove-shard', 'pin', 'unpin', 'mapping', 'failover', 'resolve', 'health', 'throttle', 'demo']) {
      assert.match(help, new RegExp(`^\\s+${c}\\b`, 'm'), `--help lists ${c}`);
    }
  });
});
