#!/usr/bin/env node
/**
 * Internal renames of issue #28 (one name per meaning), as a re-runnable script: each exported
 * symbol of RENAMES is renamed at its declaration and at every reference the TypeScript language
 * service finds in the project (tsconfig.json: src, commands, harness, test, bench), imports included,
 * whatever files the tree holds. Idempotent: a symbol already renamed is skipped.
 *
 *   node scripts/rename-symbols.mjs            rename (then: npm run build)
 *   node scripts/rename-symbols.mjs --dry-run  print the files it would change
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

export const RENAMES = [
  // the engine's router of a topology (held routes included); createRouter is only the public factory
  // (src/live-routing/live-router.ts: a config → this router, { catalog } → the live router; src/routing/entry.ts: shardctl/router)
  { file: 'src/routing/router.ts', name: 'createRouter', to: 'topologyRouter' },
];

const dryRun = process.argv.includes('--dry-run');
const root = execFileSync('git', ['rev-parse', '--show-toplevel'], { encoding: 'utf8' }).trim();
process.chdir(root);

const parsed = ts.getParsedCommandLineOfConfigFile(path.resolve('tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: (d) => { throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n')); } });
const texts = new Map();
const versions = new Map(); // bumped on each rewrite, so the next rename sees the last one
const read = (f) => texts.get(f) ?? readFileSync(f, 'utf8');
const host = {
  getScriptFileNames: () => parsed.fileNames,
  getScriptVersion: (f) => String(versions.get(f) ?? 0),
  getScriptSnapshot: (f) => (ts.sys.fileExists(f) ? ts.ScriptSnapshot.fromString(read(f)) : undefined),
  getCurrentDirectory: () => root,
  getCompilationSettings: () => parsed.options,
  getDefaultLibFileName: (o) => ts.getDefaultLibFilePath(o),
  fileExists: ts.sys.fileExists,
  readFile: ts.sys.readFile,
  readDirectory: ts.sys.readDirectory,
  directoryExists: ts.sys.directoryExists,
  getDirectories: ts.sys.getDirectories,
};
const service = ts.createLanguageService(host, ts.createDocumentRegistry());

/** Position of the name of the exported declaration `name` in `file`, or undefined. */
function declarationOf(file, name) {
  const sf = service.getProgram().getSourceFile(file);
  if (!sf) return undefined;
  for (const st of sf.statements) {
    const exported = ts.getCombinedModifierFlags(st) & ts.ModifierFlags.Export;
    if (!exported) continue;
    if ((ts.isFunctionDeclaration(st) || ts.isClassDeclaration(st) || ts.isInterfaceDeclaration(st) || ts.isTypeAliasDeclaration(st)) && st.name?.text === name) return st.name.getStart(sf);
    if (ts.isVariableStatement(st)) for (const d of st.declarationList.declarations) if (ts.isIdentifier(d.name) && d.name.text === name) return d.name.getStart(sf);
  }
  return undefined;
}

const changed = new Map();
for (const { file, name, to } of RENAMES) {
  const abs = path.resolve(file);
  const pos = declarationOf(abs, name);
  if (pos === undefined) {
    if (declarationOf(abs, to) !== undefined) console.log(`skip ${file} ${name}: already ${to}`);
    else console.warn(`${file}: no exported ${name} (and no ${to}): rename it by hand`);
    continue;
  }
  const locations = service.findRenameLocations(abs, pos, false, false, { providePrefixAndSuffixTextForRename: false }) ?? [];
  const byFile = new Map();
  for (const l of locations) (byFile.get(l.fileName) ?? byFile.set(l.fileName, []).get(l.fileName)).push(l.textSpan);
  for (const [f, spans] of byFile) {
    let text = read(f);
    for (const s of [...spans].sort((a, b) => b.start - a.start)) text = text.slice(0, s.start) + to + text.slice(s.start + s.length);
    texts.set(f, text);
    versions.set(f, (versions.get(f) ?? 0) + 1);
    changed.set(f, (changed.get(f) ?? 0) + spans.length);
  }
  console.log(`${file} ${name} → ${to}: ${locations.length} places in ${byFile.size} files`);
}
for (const [f, n] of changed) {
  console.log(`rewrite ${path.relative(root, f)} (${n})`);
  if (!dryRun) writeFileSync(f, texts.get(f));
}
