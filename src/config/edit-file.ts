import { readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { isMap, isSeq, parseDocument, type Document } from 'yaml';
import { configFromData, parseConfig } from './load.js';
import { editFolded } from './fold-edits.js';
import { editLines, type LineChange } from './line-edits.js';
import type { Config } from './types.js';
import { usageError } from '../errors.js';
import type { CapacityStatus } from './capacity.js';

/**
 * Applies an edit to the config file, keeping its comments, layout and `${VAR}` references. The
 * edited text is validated as a whole before anything is written, then written atomically
 * (temp file + rename), so a failed edit leaves the file as it was.
 */
export function editConfigFile(file: string, edit: (doc: Document) => void): Config {
  const { text, data } = editedText(file, readFileSync(file, 'utf8'), edit);
  const config = data === undefined ? parseConfig(text, file) : configFromData(data, file);
  const tmp = `${file}.shardctl-${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode: statSync(file).mode & 0o777 });
  renameSync(tmp, file);
  return config;
}

export const appendShard = (shard: { id: string; primary: string; replicas: readonly string[] }): ConfigEdit =>
  shardsOnly((doc: Document) => {
    const node = doc.createNode(shard.replicas.length ? { ...shard, replicas: [...shard.replicas] } : { id: shard.id, primary: shard.primary });
    doc.addIn(['shards'], node);
  });

/** An edit that reads and writes `shards:` alone: it commutes with pin and mapping line changes. */
const shardsOnly = (edit: (doc: Document) => void): ConfigEdit => Object.assign(edit, { shardsOnly: true });

export const setPin = (tenant: string, shard: string): ConfigEdit =>
  Object.assign(
    (doc: Document) => {
      if (doc.getIn(['strategy', 'kind']) !== 'jump') throw usageError('pins belong to the jump strategy; move an H3 cell with `shardctl mapping set`');
      if (!isMap(doc.getIn(['strategy', 'pins'], true))) doc.setIn(['strategy', 'pins'], doc.createNode({}));
      doc.setIn(['strategy', 'pins', tenant], shard);
    },
    { lines: [{ pin: tenant, shard }] },
  );

export const removePin = (tenant: string): ConfigEdit =>
  Object.assign(
    (doc: Document) => {
      if (!doc.hasIn(['strategy', 'pins', tenant])) throw usageError(`tenant ${tenant} is not pinned`);
      doc.deleteIn(['strategy', 'pins', tenant]);
    },
    { lines: [{ unpin: tenant }] },
  );

/** One cell's entry as `mapping set` writes it. */
interface MappingChange {
  cell: string;
  shard: string;
  region?: string;
  status?: CapacityStatus;
}

/**
 * An edit of the file's Document; a `setMapping` edit carries its change so `allEdits` can batch it,
 * and a pin or mapping edit its change of the file's lines (line-edits.ts), tried first. Any other
 * edit is tried on the file with its entry lines folded away (fold-edits.ts) before the whole Document.
 */
export type ConfigEdit = ((doc: Document) => void) & {
  mapping?: MappingChange;
  lines?: readonly LineChange[];
  setsMapping?: boolean;
  shardsOnly?: boolean;
  /** allEdits: the edits it is made of */
  parts?: readonly ConfigEdit[];
};

export const setMapping = (cell: string, shard: string, region?: string, status?: CapacityStatus): ConfigEdit => {
  const change: MappingChange = { cell, shard, ...(region !== undefined ? { region } : {}), ...(status !== undefined ? { status } : {}) };
  return Object.assign((doc: Document) => setMappings(doc, [change]), { mapping: change, lines: [change], setsMapping: true });
};

/**
 * Sets the entries of several cells in one pass: the mapping's cells are indexed once (the first
 * item of each cell, as a scan would find it), so thousands of changes over tens of thousands of
 * entries cost a pass, not a pass each. The Document operations are the ones a change at a time
 * makes, in the same order, so the file text is the same.
 */
function setMappings(doc: Document, changes: readonly MappingChange[]): void {
  if (doc.getIn(['strategy', 'kind']) !== 'h3') throw usageError('the cell mapping belongs to the h3 strategy; isolate a tenant with `shardctl pin`');
  const seq = doc.getIn(['strategy', 'mapping'], true);
  if (!isSeq(seq)) doc.setIn(['strategy', 'mapping'], doc.createNode([]));
  const items = (doc.getIn(['strategy', 'mapping'], true) as { items: unknown[] }).items;
  const at = new Map<string, number>();
  items.forEach((it, i) => {
    const key = isMap(it) ? String(it.get('cell')).toLowerCase() : undefined;
    if (key !== undefined && !at.has(key)) at.set(key, i);
  });
  for (const { cell, shard, region, status } of changes) {
    const i = at.get(cell.toLowerCase());
    if (i !== undefined) {
      doc.setIn(['strategy', 'mapping', i, 'shard'], shard);
      if (region !== undefined) doc.setIn(['strategy', 'mapping', i, 'region'], region);
      if (status !== undefined) doc.setIn(['strategy', 'mapping', i, 'capacity_status'], status);
    } else {
      const node = doc.createNode({ cell, shard, ...(region !== undefined ? { region } : {}), ...(status !== undefined ? { capacity_status: status } : {}) });
      node.flow = true;
      doc.addIn(['strategy', 'mapping'], node);
      at.set(cell.toLowerCase(), items.length - 1);
    }
  }
}

/**
 * Makes replica `index` of shard `id` its primary, as written in the file (a `${VAR}` stays a
 * reference), and drops the old primary: it needs rebuilding as a replica before it rejoins.
 */
export const promoteReplica = (id: string, index: number): ConfigEdit =>
  shardsOnly((doc: Document) => {
    const shards = doc.getIn(['shards'], true);
    const i = isSeq(shards) ? shards.items.findIndex((s) => isMap(s) && String(s.get('id')) === id) : -1;
    if (i < 0) throw usageError(`shard ${id} is not in the config`);
    const raw = doc.getIn(['shards', i, 'replicas', index]);
    if (typeof raw !== 'string') throw usageError(`shard ${id} has no replica ${index + 1} in the config`);
    doc.setIn(['shards', i, 'primary'], raw);
    doc.deleteIn(['shards', i, 'replicas', index]);
  });

/** The config an edit would give, validated, without writing anything (plans show it). */
export function previewConfigEdit(file: string, edit: (doc: Document) => void): Config {
  const before = readFileSync(file, 'utf8');
  const after = editedText(file, before, edit);
  const config = after.data === undefined ? parseConfig(after.text, file) : configFromData(after.data, file);
  lastPreview = { file, before, edit, after };
  return config;
}

/**
 * The last preview's result, so the `--apply` that follows it (same file, same edit) does not parse
 * and serialise a large file a second time. Used only if the file's text is still exactly what was
 * previewed and the edit is the same function: the edits here depend on the document alone.
 */
let lastPreview: { file: string; before: string; edit: (doc: Document) => void; after: Edited } | undefined;

/** The edited text, and its data when the line edit has read it already (it is then validated from that). */
type Edited = { text: string; data?: unknown };

function editedText(file: string, before: string, edit: ConfigEdit): Edited {
  const p = lastPreview;
  if (p && p.file === file && p.edit === edit && p.before === before) return p.after;
  const byLines = edit.lines && editLines(before, edit.lines);
  if (byLines) return byLines;
  // a mapping edit finds its cell by position, which folding changes: it takes the whole Document
  const byFolding = edit.setsMapping ? undefined : editFolded(before, edit);
  if (byFolding) return byFolding;
  const byBoth = linesThenFolded(before, edit);
  if (byBoth) return byBoth;
  const doc = parseDocument(before, { uniqueKeys: false }); // yaml's check is quadratic; the edited text is validated after
  edit(doc);
  return { text: doc.toString({ flowCollectionPadding: true }) };
}

/**
 * remove-shard's last edit (drop the shard, unpin the tenants whose pin is now redundant): its pin
 * changes made on the lines, then its `shards:` edits on the folded text. The two touch different
 * keys and neither reads the other's, so their order does not matter; each step is proven as it is
 * made (line-edits.ts, fold-edits.ts).
 */
function linesThenFolded(before: string, edit: ConfigEdit): Edited | undefined {
  const parts = edit.parts;
  if (!parts || !parts.every((p) => p.lines || p.shardsOnly) || !parts.some((p) => p.lines)) return undefined;
  const pinned = editLines(before, parts.flatMap((p) => p.lines ?? []));
  const rest = parts.filter((p) => !p.lines);
  return pinned && editFolded(pinned.text, (doc) => rest.forEach((p) => p(doc)));
}

/** Several edits as one (one validation, one atomic write); consecutive `setMapping`s in one pass. */
export const allEdits = (...edits: ConfigEdit[]): ConfigEdit => {
  const all = (doc: Document) => {
    for (let i = 0; i < edits.length; ) {
      const run: MappingChange[] = [];
      for (let m = edits[i]!.mapping; m; m = edits[++i]?.mapping) run.push(m);
      if (run.length) setMappings(doc, run);
      else edits[i++]!(doc);
    }
  };
  // the line changes of all of them, in order, when every one has its own
  const lines = edits.every((e) => e.lines) ? { lines: edits.flatMap((e) => e.lines!) } : {};
  return Object.assign(all, lines, { setsMapping: edits.some((e) => e.setsMapping), parts: edits });
};

/** Drops a shard from `shards:` (the caller has made sure it holds nothing and nothing routes to it). */
export const dropShard = (id: string): ConfigEdit =>
  shardsOnly((doc: Document) => {
    const shards = doc.getIn(['shards'], true);
    const i = isSeq(shards) ? shards.items.findIndex((s) => isMap(s) && String(s.get('id')) === id) : -1;
    if (i < 0) throw usageError(`shard ${id} is not in the config`);
    doc.deleteIn(['shards', i]);
  });
