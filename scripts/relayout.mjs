#!/usr/bin/env node
/**
 * Folders by idea (issue #28, "layout"), as a re-runnable script: moves the files of MOVES with
 * `git mv` and rewrites every relative import, re-export and dynamic import of the TypeScript tree to
 * match, whatever files the tree holds (it is run on a merge of branches it has never seen).
 *
 *   node scripts/relayout.mjs            move and rewrite (then: npm run build)
 *   node scripts/relayout.mjs --dry-run  print what it would do, change nothing
 *
 * Idempotent: a path already moved is skipped, and a second run changes nothing.
 *
 * How an import is rewritten: its specifier is resolved against the importing file's OLD location to
 * a repository path, that path is mapped through MOVES, and the result is made relative to the
 * importing file's NEW location (the `.js` suffix kept). Also rewritten: path mentions in comments
 * (`src/transfer/guard.ts`, `transfer/guard.ts`, a bare `guard.ts` next to it) and the dist paths of
 * package.json. Not touched: test/layers.test.ts's LAYERS (edited by hand after the move).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

/**
 * Old path → new path. A path ending in `/` is a folder: every file under it moves (files added to it
 * by anyone later included). A file entry wins over the folder entry that contains it.
 */
export const MOVES = [
  // the fence: the unit guard on shards, the unit fence, statement fences per table, the monolith's and the server's
  ['src/transfer/guard.ts', 'src/fence/unit-guard.ts'],
  ['src/transfer/fence.ts', 'src/fence/unit-fence.ts'],
  ['src/transfer/table-fence.ts', 'src/fence/table-fence.ts'],
  ['src/transfer/route-guard.ts', 'src/fence/route-guard.ts'],
  ['src/transfer/record-topology.ts', 'src/fence/record-topology.ts'],
  ['src/online/fence.ts', 'src/fence/source-fence.ts'],
  ['src/failover/fence-server.ts', 'src/fence/server-fence.ts'],
  // copying units: batch copy with checksums, scans, inventory, reference tables, units found without a placement
  ['src/transfer/batch.ts', 'src/unit-copy/batch.ts'],
  ['src/transfer/unit-sums.ts', 'src/unit-copy/unit-sums.ts'],
  ['src/transfer/scan.ts', 'src/unit-copy/scan.ts'],
  ['src/transfer/inventory.ts', 'src/unit-copy/inventory.ts'],
  ['src/transfer/reference.ts', 'src/unit-copy/reference.ts'],
  ['src/transfer/unplaced.ts', 'src/unit-copy/unplaced.ts'],
  // the configured tables' DDL, as the catalog keeps it: a table-model idea
  ['src/transfer/definitions.ts', 'src/tables/definitions.ts'],
  // the foreign-key analysis: how each key fares across units ("crossing keys"), and the check after a trigger-free copy
  ['src/transfer/crossing.ts', 'src/foreign-keys/key-verdicts.ts'],
  ['src/transfer/foreign-keys.ts', 'src/foreign-keys/after-copy-check.ts'],
  // rows of tables with several routes; "cross" means only "on more than one shard"
  ['src/transfer/cross-rows.ts', 'src/multi-route/cross-shard-rows.ts'],
  ['src/transfer/cross-record.ts', 'src/multi-route/refresh-record.ts'],
  ['src/catalog/cross-rows.ts', 'src/catalog/cross-shard-rows.ts'],
  // ids that never collide across shards
  ['src/transfer/sequences.ts', 'src/sequences/align.ts'],
  // pausing copies and applies
  ['src/transfer/throttle/', 'src/throttle/'],
  // the rollback window apart from the forward migration (which stays in src/online/)
  ['src/online/reverse.ts', 'src/rollback/reverse-stream.ts'],
  ['src/online/follow-back.ts', 'src/rollback/follow-back.ts'],
  ['src/online/rollback.ts', 'src/rollback/rollback.ts'],
  ['src/online/finish.ts', 'src/rollback/finish.ts'],
  // folders named for what they do
  ['src/drain/remove-shard.ts', 'src/remove-shard/index.ts'],
  ['src/drain/', 'src/remove-shard/'],
  ['src/crossshard/two-phase.ts', 'src/two-phase/commit.ts'],
  ['src/crossshard/', 'src/two-phase/'],
  // topology/: the add-shard engine, config-file editing and the catalog-backed router, apart
  ['src/topology/add-shard.ts', 'src/add-shard/index.ts'],
  ['src/topology/edit.ts', 'src/config/edit-file.ts'],
  ['src/topology/live-router.ts', 'src/live-routing/live-router.ts'],
  ['src/topology/route-topology.ts', 'src/live-routing/route-source.ts'],
];

/** Folders MOVES empties (or splits): a file left in one is reported, it needs a place by hand. */
const EMPTIED = ['src/transfer/', 'src/topology/', 'src/drain/', 'src/crossshard/'];

/** The TypeScript tree whose relative imports are rewritten. */
const ROOTS = ['src', 'commands', 'harness', 'bench', 'test'];

const dryRun = process.argv.includes('--dry-run');
const root = execFileSync('git', ['rev-parse', '--show-toplevel'], { encoding: 'utf8' }).trim();
process.chdir(root);
const posix = path.posix;

/** The new path of repository path `p` (unchanged when no entry covers it). */
export function mapPath(p) {
  let best;
  for (const [from, to] of MOVES) {
    const hit = from.endsWith('/') ? p.startsWith(from) || p === from.slice(0, -1) : p === from;
    if (hit && (!best || from.length > best[0].length)) best = [from, to];
  }
  if (!best) return p;
  const [from, to] = best;
  if (!from.endsWith('/')) return to;
  return p === from.slice(0, -1) ? to.slice(0, -1) : to + p.slice(from.length);
}

// A new path an old entry would move again would make a second run move it again.
for (const [, to] of MOVES) {
  if (mapPath(to) !== to) throw new Error(`relayout: ${to} is itself covered by an entry of MOVES (not idempotent)`);
}

function walk(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((name) => {
    const rel = `${dir}/${name}`;
    if (name === 'node_modules' || name === 'dist') return [];
    return statSync(rel).isDirectory() ? walk(rel) : [rel];
  });
}

const tracked = new Set(execFileSync('git', ['ls-files', '-z'], { encoding: 'utf8' }).split('\0').filter(Boolean));
const allFiles = new Set(ROOTS.flatMap(walk));
const tsFiles = [...allFiles].filter((f) => /\.(ts|mts|mjs)$/.test(f) && !f.endsWith('.d.ts'));

/** Repository path an import specifier of `file` names (the .ts source for a .js specifier). */
function resolveSpecifier(file, spec) {
  const target = posix.normalize(posix.join(posix.dirname(file), spec));
  const asTs = target.replace(/\.js$/, '.ts');
  if (target !== asTs && allFiles.has(asTs)) return { path: asTs, suffix: '.js', ext: '.ts' };
  return { path: target, suffix: '', ext: '' };
}

function relativeSpecifier(fromFile, toPath) {
  let rel = posix.relative(posix.dirname(fromFile), toPath);
  if (!rel.startsWith('.')) rel = `./${rel}`;
  return rel;
}

/** The string literals naming modules in `sf`: import/export declarations, import(), import types, require(). */
function moduleSpecifiers(sf) {
  const out = [];
  const visit = (node) => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      out.push(node.moduleSpecifier);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference) && ts.isStringLiteral(node.moduleReference.expression)) {
      out.push(node.moduleReference.expression);
    } else if (ts.isCallExpression(node) && (node.expression.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(node.expression) && node.expression.text === 'require'))) {
      const [arg] = node.arguments;
      if (arg && (ts.isStringLiteral(arg) || ts.isNoSubstitutionTemplateLiteral(arg))) out.push(arg);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      out.push(node.argument.literal);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

/** Every comment range of `sf` (leading and trailing comments of every node, once each). */
function commentRanges(sf) {
  const text = sf.text;
  const seen = new Map();
  const add = (ranges) => {
    for (const r of ranges ?? []) seen.set(r.pos, r);
  };
  const visit = (node) => {
    add(ts.getLeadingCommentRanges(text, node.getFullStart()));
    add(ts.getTrailingCommentRanges(text, node.getEnd()));
    ts.forEachChild(node, visit);
  };
  visit(sf);
  add(ts.getLeadingCommentRanges(text, sf.endOfFileToken.getFullStart()));
  return [...seen.values()];
}

const movedFolder = (p) => MOVES.some(([from]) => from.endsWith('/') && (p === from || from.startsWith(p)));

/**
 * The mention `m` (a path in a comment) of a file at `file`, rewritten for its new place, or undefined when it names
 * nothing that moves. Forms: `src/x/y.ts`, `x/y.ts` (from src/), `y.ts` (next to the file), and folders ending in `/`.
 */
function rewriteMention(m, file, newFile) {
  const candidates = m.startsWith('src/') ? [[m, 'repo']] : m.includes('/') ? [[`src/${m}`, 'src'], [posix.join(posix.dirname(file), m), 'near']] : [[posix.join(posix.dirname(file), m), 'near']];
  for (const [p, style] of candidates) {
    const isFolder = p.endsWith('/');
    const known = isFolder ? movedFolder(p) : allFiles.has(p) || existsSync(p);
    if (!known) continue;
    const to = isFolder ? mapPath(`${p}x`).slice(0, -1) : mapPath(p);
    if (to === p) return undefined;
    if (style === 'repo') return to;
    if (posix.dirname(to) === posix.dirname(newFile) && !isFolder) return posix.basename(to);
    return to.startsWith('src/') ? to.slice(4) : to;
  }
  return undefined;
}

const MENTION = /(?<![\w./-])((?:src\/)?(?:[\w-]+\/)*[\w-]+(?:\.ts|\/))(?![\w/])/g;

function rewriteComments(text, sf, file, newFile) {
  const edits = [];
  for (const r of commentRanges(sf)) {
    const body = text.slice(r.pos, r.end);
    for (const m of body.matchAll(MENTION)) {
      const mention = m[1];
      const to = rewriteMention(mention, file, newFile);
      if (to && to !== mention) edits.push({ start: r.pos + m.index, end: r.pos + m.index + mention.length, text: to });
    }
  }
  return edits;
}

function applyEdits(text, edits) {
  let out = text;
  for (const e of [...edits].sort((a, b) => b.start - a.start)) out = out.slice(0, e.start) + e.text + out.slice(e.end);
  return out;
}

// 1. Compute every file's new text against the OLD layout, before anything moves.
const rewritten = new Map();
for (const file of tsFiles) {
  const newFile = mapPath(file);
  const text = readFileSync(file, 'utf8');
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, file.endsWith('.ts') ? ts.ScriptKind.TS : ts.ScriptKind.JS);
  const edits = [];
  for (const lit of moduleSpecifiers(sf)) {
    const spec = lit.text;
    if (!spec.startsWith('.')) continue; // a package
    const { path: target, suffix, ext } = resolveSpecifier(file, spec);
    const newTarget = mapPath(target);
    if (newTarget === target && newFile === file) continue;
    let next = relativeSpecifier(newFile, newTarget);
    if (suffix) next = next.slice(0, -ext.length) + suffix;
    if (next !== spec) edits.push({ start: lit.getStart(sf) + 1, end: lit.getEnd() - 1, text: next });
  }
  edits.push(...rewriteComments(text, sf, file, newFile));
  const next = applyEdits(text, edits);
  if (next !== text) rewritten.set(file, next);
}

// 2. Move.
let moved = 0;
for (const file of [...allFiles].sort()) {
  const to = mapPath(file);
  if (to === file) continue;
  if (existsSync(to)) throw new Error(`relayout: ${file} → ${to}: the target exists already`);
  console.log(`move ${file} → ${to}`);
  moved++;
  if (dryRun) continue;
  mkdirSync(path.dirname(to), { recursive: true });
  if (tracked.has(file)) execFileSync('git', ['mv', file, to]);
  else renameSync(file, to);
}
if (!dryRun) {
  for (const [from] of MOVES) {
    if (!from.endsWith('/')) continue;
    // an emptied folder goes (git mv leaves the directory behind)
    const dirs = walkDirs(from.slice(0, -1)).reverse();
    for (const d of dirs) if (readdirSync(d).length === 0) rmdirSync(d);
  }
  for (const d of EMPTIED) {
    const dir = d.slice(0, -1);
    if (existsSync(dir) && readdirSync(dir).length === 0) rmdirSync(dir);
  }
}
function walkDirs(dir) {
  if (!existsSync(dir)) return [];
  return [dir, ...readdirSync(dir).flatMap((n) => (statSync(`${dir}/${n}`).isDirectory() ? walkDirs(`${dir}/${n}`) : []))];
}

// 3. Write the rewritten texts at the new places.
for (const [file, text] of rewritten) {
  console.log(`rewrite ${mapPath(file)}${mapPath(file) === file ? '' : ` (was ${file})`}`);
  if (!dryRun) writeFileSync(mapPath(file), text);
}

// 4. package.json's dist paths (main, types, exports, bin, files).
const pkgText = readFileSync('package.json', 'utf8');
const pkgNext = pkgText.replace(/"(\.\/)?dist\/([^"]+?)(\.d\.ts|\.js)"/g, (all, dot = '', p, ext) => {
  const to = mapPath(`${p}.ts`);
  return to === `${p}.ts` ? all : `"${dot}dist/${to.slice(0, -3)}${ext}"`;
});
if (pkgNext !== pkgText) {
  console.log('rewrite package.json');
  if (!dryRun) writeFileSync('package.json', pkgNext);
}

// 5. What is left for a human.
const leftovers = EMPTIED.flatMap((d) => walk(d.slice(0, -1))).filter((f) => mapPath(f) === f);
for (const f of leftovers) console.warn(`left in a folder MOVES splits: ${f} (give it a place in MOVES or by hand)`);
console.log(`${dryRun ? 'would move' : 'moved'} ${moved} files, ${dryRun ? 'would rewrite' : 'rewrote'} ${rewritten.size + (pkgNext !== pkgText ? 1 : 0)} files`);
