import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import ts from 'typescript';
import { repoPath, repoRoot } from './helpers/paths.js';

/**
 * The one direction of imports, lowest layer first (the README's architecture section says the same,
 * one line per folder). A unit is a folder (`src/db/`) or a loose file (`src/errors.ts`); a unit may
 * import only units on EARLIER lines. Units on the same line may not import each other: the command
 * orchestrators share code only through the layers below them.
 */
export const LAYERS: readonly (readonly string[])[] = [
  ['src/errors.ts', 'src/redact.ts'], // error kinds and exit codes; password redaction
  ['src/cells/'], // H3 cell math
  ['src/config/'], // YAML → validated, readonly Config
  ['src/routing/'], // tenant keys, jump hash, the router, route lookups
  ['src/db/'], // connections, endpoints, identifiers, passwords, PostgreSQL errors
  ['src/copy/'], // COPY stream piping
  ['src/catalog/'], // all SQL on the shardctl schema
  ['src/tables/'], // table model, unit scopes, checksums, DDL, drift
  ['src/transfer/'], // what migrate, rebalance and verify share: batch copy, scan, inventory, reference tables
  ['src/stream/'], // change data capture: slot, pgoutput decoding, routing and applying changes, stream positions
  ['src/plan/', 'src/migrate/', 'src/verify/', 'src/rebalance/', 'src/topology/', 'src/health/', 'src/crossshard/'], // one orchestrator per command (crossshard: two-phase commit and resolve)
  ['src/failover/', 'src/drain/', 'src/online/'], // composed operations: failover (health, topology edits), remove-shard (topology edits, rebalance), online migration (migrate --follow, cutover, abandon: composes migrate and verify)
  ['src/public.ts'], // the library's public API: the package's entry
  ['src/index.ts'], // the public API and what the CLI needs besides: the only engine file commands/ imports
  ['harness/fleet/'], // embedded PostgreSQL servers (tests, demo, bench)
  ['harness/fixtures/'], // deterministic data sets
  ['harness/demo/'], // the demo's fleet staging
  ['commands/ui/'], // reporters, formatting, error printing
  ['commands/signals.ts', 'commands/context.ts', 'commands/env.ts', 'commands/exit-codes.ts'], // interrupts; options and config; SHARDCTL_* twins; exit codes
  ['commands/run-rebalance.ts'], // the rebalance run shared by rebalance, add-shard and pin
  ['commands/*.ts'], // one file per command, none importing another
  ['commands/cli.ts'], // the program
  ['bench/'], // npm run bench
];

export interface Import {
  from: string;
  to: string;
}

/** The unit a repository path belongs to: its LAYERS entry, a command file, or undefined. */
export function unitOf(file: string): string | undefined {
  for (const layer of LAYERS) for (const u of layer) if (u.endsWith('/') ? file.startsWith(u) : file === u) return u;
  if (/^commands\/[^/]+\.ts$/.test(file)) return file; // one unit per command file
  return undefined;
}

function layerOf(unit: string): number {
  const i = LAYERS.findIndex((l) => l.includes(unit));
  return i >= 0 ? i : LAYERS.findIndex((l) => l.includes('commands/*.ts'));
}

/** Every import against the direction, each as one line naming both files; and every folder cycle. */
export function violations(imports: readonly Import[]): string[] {
  const out: string[] = [];
  const edges = new Map<string, Set<string>>();
  for (const { from, to } of imports) {
    const a = unitOf(from);
    const b = unitOf(to);
    if (!a) out.push(`${from}: not in any layer (add its folder to LAYERS and the README architecture section)`);
    if (!b) out.push(`${from} imports ${to}, which is not in any layer`);
    if (!a || !b || a === b) continue;
    if (!edges.has(a)) edges.set(a, new Set());
    edges.get(a)!.add(b);
    if (a.startsWith('commands/') && b.startsWith('src/') && b !== 'src/index.ts') {
      out.push(`${from} imports ${to}: commands/ reaches the engine through src/index.ts only`);
    } else if (layerOf(b) >= layerOf(a)) {
      out.push(`${from} imports ${to}: ${a} may not depend on ${b} (${layerOf(b) === layerOf(a) ? 'same layer' : 'a higher layer'})`);
    }
  }
  // The direction above already rules cycles out; naming one makes a tangle easier to undo.
  const seen = new Set<string>();
  const stack: string[] = [];
  const visit = (u: string): void => {
    const at = stack.indexOf(u);
    if (at >= 0) {
      out.push(`cycle: ${[...stack.slice(at), u].join(' → ')}`);
      return;
    }
    if (seen.has(u)) return;
    seen.add(u);
    stack.push(u);
    for (const v of [...(edges.get(u) ?? [])].sort()) visit(v);
    stack.pop();
  };
  for (const u of [...edges.keys()].sort()) visit(u);
  return out;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(repoPath(dir)).flatMap((name) => {
    const rel = `${dir}/${name}`;
    if (statSync(repoPath(rel)).isDirectory()) return sourceFiles(rel);
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [rel] : [];
  });
}

/** Every relative import (static, re-export, dynamic `import()`) of the source tree, as repository paths. */
function repositoryImports(): Import[] {
  const imports: Import[] = [];
  for (const file of ['src', 'commands', 'harness', 'bench'].flatMap(sourceFiles)) {
    const info = ts.preProcessFile(readFileSync(repoPath(file), 'utf8'), true, true);
    for (const { fileName } of info.importedFiles) {
      if (!fileName.startsWith('.')) continue; // a package
      const to = path.relative(repoRoot, path.resolve(repoRoot, path.dirname(file), fileName)).replace(/\.js$/, '.ts');
      imports.push({ from: file, to });
    }
  }
  return imports;
}

describe('layering', () => {
  it('every import in src/, commands/, harness/ and bench/ points down the layers, with no folder cycle', () => {
    const imports = repositoryImports();
    assert.ok(imports.length > 200, `found only ${imports.length} imports: is the parser reading the tree?`);
    assert.deepEqual(violations(imports), []);
  });

  it('the check catches an import against the direction, a cross-command import and a cycle', () => {
    const v = violations([
      { from: 'src/db/connect.ts', to: 'src/catalog/catalog.ts' },
      { from: 'src/catalog/catalog.ts', to: 'src/db/connect.ts' },
      { from: 'src/migrate/index.ts', to: 'src/plan/index.ts' },
      { from: 'commands/pin.ts', to: 'commands/rebalance.ts' },
      { from: 'commands/plan.ts', to: 'src/plan/index.ts' },
      { from: 'src/new/thing.ts', to: 'src/errors.ts' },
    ]);
    assert.deepEqual(v, [
      'src/db/connect.ts imports src/catalog/catalog.ts: src/db/ may not depend on src/catalog/ (a higher layer)',
      'src/migrate/index.ts imports src/plan/index.ts: src/migrate/ may not depend on src/plan/ (same layer)',
      'commands/pin.ts imports commands/rebalance.ts: commands/pin.ts may not depend on commands/rebalance.ts (same layer)',
      'commands/plan.ts imports src/plan/index.ts: commands/ reaches the engine through src/index.ts only',
      'src/new/thing.ts: not in any layer (add its folder to LAYERS and the README architecture section)',
      'cycle: src/catalog/ → src/db/ → src/catalog/',
    ]);
  });

  it('the README architecture section names every layer', () => {
    const readme = readFileSync(repoPath('README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Architecture'), readme.indexOf('\n## ', readme.indexOf('## Architecture') + 1));
    const missing = LAYERS.flat().filter((u) => u !== 'commands/*.ts' && !section.includes(u.replace(/^(src|harness|commands)\//, '')));
    assert.deepEqual(missing, []);
  });
});
