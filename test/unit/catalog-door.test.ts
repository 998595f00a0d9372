import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import ts from 'typescript';
import { MIGRATIONS } from '../../src/catalog/schema.js';
import { repoPath, repoRoot } from '../helpers/paths.js';

/**
 * The catalog is the one door (issue 28): every SQL statement on the catalog's tables lives in
 * src/catalog/. A static check, no server: it reads the TypeScript of the engine (src/) and the
 * CLI (commands/) and fails on any string that is SQL naming a catalog table outside src/catalog/.
 * The shardctl schema also exists on the shards and the monolith (the guard, the stream positions,
 * the table fences): those tables are not the catalog's and are not listed here. harness/, bench/
 * and test/ are observers that check the engine with SQL of their own; they are not scanned.
 */

/** Every `CREATE TABLE shardctl.<name>` in src/catalog/ (the migrations and the throttle's table). */
function catalogTables(): string[] {
  const dir = repoPath('src/catalog');
  const names = new Set<string>();
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.ts'))) {
    for (const m of readFileSync(path.join(dir, f), 'utf8').matchAll(/CREATE TABLE (?:IF NOT EXISTS )?shardctl\.(\w+)/g)) names.add(m[1]!);
  }
  return [...names].sort();
}

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...tsFiles(p));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** What makes a string SQL rather than prose (a metric's help text may name a table too). */
const SQL_WORD = /\b(SELECT|INSERT|UPDATE|DELETE|FROM|INTO|JOIN|TABLE|TRUNCATE|COPY|to_regclass)\b/i;

/** `file:line: text` of every string or template literal outside src/catalog/ that is SQL on a catalog table. */
function catalogSqlOutside(tables: readonly string[]): string[] {
  const mention = new RegExp(`\\bshardctl\\.(?:"?)(${tables.join('|')})\\b`);
  const files = [...tsFiles(repoPath('src')), ...tsFiles(repoPath('commands'))].filter((f) => !f.startsWith(repoPath('src/catalog') + path.sep));
  const found: string[] = [];
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
    const visit = (node: ts.Node) => {
      if (ts.isStringLiteralLike(node) || ts.isTemplateExpression(node)) {
        const s = node.getText(source);
        if (mention.test(s) && SQL_WORD.test(s)) {
          const line = source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1;
          found.push(`${path.relative(repoRoot, file)}:${line}: ${s.replace(/\s+/g, ' ').slice(0, 120)}`);
        }
        return;
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return found;
}

describe('the catalog as the one door', () => {
  it('knows the catalog tables (the check below cannot pass by listing none)', () => {
    const tables = catalogTables();
    for (const t of ['runs', 'placements', 'placement_tables', 'moves', 'table_defs', 'transactions', 'online', 'held_routes', 'throttle']) {
      assert.ok(tables.includes(t), `catalog table ${t} not found in src/catalog/`);
    }
    // every table of the migrations in schema.ts is among them
    for (const m of MIGRATIONS.join('\n').matchAll(/CREATE TABLE (?:IF NOT EXISTS )?shardctl\.(\w+)/g)) assert.ok(tables.includes(m[1]!), m[1]);
    // the shards' own tables in the shardctl schema are not catalog tables
    for (const t of ['fenced_units', 'fence_epoch', 'follow_position', 'follow_stash']) assert.ok(!tables.includes(t), t);
  });

  it('finds catalog SQL where it is planted (the detector works)', () => {
    const tables = catalogTables();
    const mention = new RegExp(`\\bshardctl\\.(?:"?)(${tables.join('|')})\\b`);
    assert.ok(mention.test('SELECT unit FROM shardctl.placements') && SQL_WORD.test('SELECT unit FROM shardctl.placements'));
    assert.ok(!mention.test('SELECT 1 FROM shardctl.fenced_units'));
    assert.ok(!SQL_WORD.test('Units fenced or half-moved (rows in shardctl.moves).'));
  });

  it('no SQL on a catalog table outside src/catalog/', () => {
    const found = catalogSqlOutside(catalogTables());
    assert.deepEqual(found, [], `catalog SQL outside src/catalog/ (move it into a catalog module):\n${found.join('\n')}`);
  });
});
