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
  ['src/config/'], // YAML → validated, readonly Config; editing the file in place
  ['src/routing/'], // tenant keys, jump hash, the router, route lookups
  ['src/db/'], // connections, endpoints, identifiers, passwords, PostgreSQL errors
  ['src/copy/'], // COPY stream piping
  ['src/catalog/'], // all SQL on the shardctl schema
  ['src/live-routing/'], // the router that follows the catalog's live topology; the topology `route` answers with
  ['src/throttle/'], // pausing copies and applies: replica lag, throttle on/off
  ['src/tables/'], // table model, unit scopes, checksums, DDL and its record, drift
  ['src/sequences/'], // ids that never collide across shards
  ['src/fence/'], // every write fence: the unit guard and fence on shards, table fences, the monolith's and a failed-over server's
  ['src/foreign-keys/'], // how each foreign key fares across units; the check after a copy without triggers
  ['src/multi-route/'], // tables with several routes: their cross-shard rows and the catalog's record of them
  ['src/unit-copy/'], // copying units: batches with checksums, scans, inventory, reference tables, unplaced units
  ['src/stream/'], // change data capture: slot, pgoutput decoding, routing and applying changes, stream positions
  ['src/row-proof/'], // proving rows recorded as changed: one reader over the via chain, the monolith-vs-shards comparer, keyless rows by count, the prover's rounds and settle wait (both directions)
  ['src/plan/', 'src/migrate/', 'src/verify/', 'src/rebalance/', 'src/add-shard/', 'src/health/', 'src/two-phase/'], // one orchestrator per command (two-phase: crossShard's two-phase commit and resolve)
  ['src/failover/', 'src/remove-shard/', 'src/rollback/'], // composed operations: failover (health, topology edits), remove-shard (topology edits, rebalance), the rollback window (cutover --reverse/--finish, rollback --follow, rollback)
  ['src/online/'], // the online migration: migrate --follow, cutover (opens the rollback window), abandon
  ['src/public.ts'], // the library's public API: the package's entry
  ['src/index.ts', 'src/basics.ts', 'src/route-door.ts'], // the public API and what the CLI, bench/ and harness/ need besides; the light part the CLI imports eagerly; what route needs: the only engine files commands/ imports
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

/** The engine files harness/ and bench/ may import: the library's entry points, nothing inside. */
export const ENTRY_POINTS: readonly string[] = ['src/public.ts', 'src/index.ts', 'src/routing/entry.ts'];

/** The cycles of a directed graph, each once, as paths `a → b → a` (nodes visited in sorted order). */
function cycles(edges: ReadonlyMap<string, ReadonlySet<string>>): string[][] {
  const out: string[][] = [];
  const seen = new Set<string>();
  const stack: string[] = [];
  const visit = (u: string): void => {
    const at = stack.indexOf(u);
    if (at >= 0) {
      out.push([...stack.slice(at), u]);
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

/**
 * Every import against the direction, each as one line naming both files; every folder cycle; every
 * cycle between the files of one folder; and every import of harness/ or bench/ into the engine that
 * does not go through an entry point.
 */
export function violations(imports: readonly Import[]): string[] {
  const out: string[] = [];
  const edges = new Map<string, Set<string>>();
  const fileEdges = new Map<string, Set<string>>(); // between files of one unit
  const add = (g: Map<string, Set<string>>, x: string, y: string) => (g.get(x) ?? g.set(x, new Set()).get(x)!).add(y);
  for (const { from, to } of imports) {
    const a = unitOf(from);
    const b = unitOf(to);
    if (!a) out.push(`${from}: not in any layer (add its folder to LAYERS and the README architecture section)`);
    if (!b) out.push(`${from} imports ${to}, which is not in any layer`);
    if (a && a === b && from !== to) add(fileEdges, from, to);
    if (!a || !b || a === b) continue;
    add(edges, a, b);
    if (a.startsWith('commands/') && b.startsWith('src/') && !['src/index.ts', 'src/basics.ts', 'src/route-door.ts'].includes(b)) {
      out.push(`${from} imports ${to}: commands/ reaches the engine through src/index.ts (and its parts src/basics.ts, src/route-door.ts) only`);
    } else if (/^(harness|bench)\//.test(a) && to.startsWith('src/') && !ENTRY_POINTS.includes(to)) {
      out.push(`${from} imports ${to}: harness/ and bench/ reach the engine through ${ENTRY_POINTS.join(', ')} only (export what they need from src/index.ts)`);
    } else if (layerOf(b) >= layerOf(a)) {
      out.push(`${from} imports ${to}: ${a} may not depend on ${b} (${layerOf(b) === layerOf(a) ? 'same layer' : 'a higher layer'})`);
    }
  }
  // The direction above already rules folder cycles out; naming one makes a tangle easier to undo.
  for (const c of cycles(edges)) out.push(`cycle: ${c.join(' → ')}`);
  // Files of one folder may import each other, but never in a circle: module load order would decide what is initialised.
  for (const c of cycles(fileEdges)) out.push(`cycle inside ${unitOf(c[0]!)}: ${c.join(' → ')}`);
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
  it('every import in src/, commands/, harness/ and bench/ points down the layers, with no cycle between folders or files', () => {
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
      'commands/plan.ts imports src/plan/index.ts: commands/ reaches the engine through src/index.ts (and its parts src/basics.ts, src/route-door.ts) only',
      'src/new/thing.ts: not in any layer (add its folder to LAYERS and the README architecture section)',
      'cycle: src/catalog/ → src/db/ → src/catalog/',
    ]);
  });

  it('the check catches a cycle between the files of one folder', () => {
    const v = violations([
      { from: 'src/migrate/index.ts', to: 'src/migrate/copy.ts' },
      { from: 'src/migrate/copy.ts', to: 'src/migrate/index.ts' },
      { from: 'src/tables/scope.ts', to: 'src/tables/routes.ts' },
      { from: 'src/tables/routes.ts', to: 'src/tables/scope-base.ts' },
      { from: 'src/tables/scope.ts', to: 'src/tables/scope-base.ts' },
      { from: 'src/stream/a.ts', to: 'src/stream/b.ts' },
      { from: 'src/stream/b.ts', to: 'src/stream/c.ts' },
      { from: 'src/stream/c.ts', to: 'src/stream/a.ts' },
    ]);
    assert.deepEqual(v, [
      'cycle inside src/migrate/: src/migrate/copy.ts → src/migrate/index.ts → src/migrate/copy.ts',
      'cycle inside src/stream/: src/stream/a.ts → src/stream/b.ts → src/stream/c.ts → src/stream/a.ts',
    ]);
  });

  it('the check catches harness/ and bench/ importing the engine other than through its entry points', () => {
    const v = violations([
      { from: 'harness/fleet/server.ts', to: 'src/redact.ts' },
      { from: 'harness/demo/stage.ts', to: 'src/index.ts' },
      { from: 'bench/fleet.ts', to: 'src/unit-copy/inventory.ts' },
      { from: 'bench/fleet.ts', to: 'src/public.ts' },
      { from: 'bench/worker.ts', to: 'src/routing/entry.ts' },
      { from: 'bench/worker.ts', to: 'src/routing/router.ts' },
      { from: 'bench/run.ts', to: 'harness/fleet/index.ts' },
    ]);
    const why = 'harness/ and bench/ reach the engine through src/public.ts, src/index.ts, src/routing/entry.ts only (export what they need from src/index.ts)';
    assert.deepEqual(v, [
      `harness/fleet/server.ts imports src/redact.ts: ${why}`,
      `bench/fleet.ts imports src/unit-copy/inventory.ts: ${why}`,
      `bench/worker.ts imports src/routing/router.ts: ${why}`,
    ]);
  });

  it('the README architecture section names every layer', () => {
    const readme = readFileSync(repoPath('README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Architecture'), readme.indexOf('\n## ', readme.indexOf('## Architecture') + 1));
    const missing = LAYERS.flat().filter((u) => u !== 'commands/*.ts' && !section.includes(u.replace(/^(src|harness|commands)\//, '')));
    assert.deepEqual(missing, []);
  });
});
