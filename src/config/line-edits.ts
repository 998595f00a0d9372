import { isDeepStrictEqual } from 'node:util';
import { flowEntryLine } from './mapping-lines.js';
import { pinLine } from './pin-lines.js';
import { readConfigText } from './read-text.js';

/**
 * Pin, unpin and mapping edits made on the lines of the file, in time proportional to the change
 * (plus one fast read of the text before and after), instead of yaml's parse and re-serialisation of
 * the whole document (seconds for 50,000 entries). Only the entry's own line changes, written as
 * yaml writes it; every other byte of the file stays.
 *
 * Where the lines are is a guess from the text (the `pins:` or `mapping:` block and its one-line
 * entries); that the guess was right is proven: the edited text is read again and must mean exactly
 * the data of the text before with the changes made to it as the Document edit makes them. Whenever
 * that does not hold, or the text has a shape this does not edit (quoted or block-style entries, a
 * flow-style map, an entry yaml would write over several lines), the answer is undefined and the
 * caller takes the Document path.
 */
export type LineChange =
  | { pin: string; shard: string }
  | { unpin: string }
  | { cell: string; shard: string; region?: string; status?: string };

export function editLines(text: string, changes: readonly LineChange[]): { text: string; data: unknown } | undefined {
  const read = readConfigText(text, '');
  if (!('data' in read)) return undefined;
  const expected = read.data as { strategy?: { kind?: unknown; pins?: unknown; mapping?: unknown } } | null;
  const lines = text.split('\n');
  const pins = changes.some((c) => 'pin' in c || 'unpin' in c) ? pinBlock(lines, expected) : undefined;
  const cells = changes.some((c) => 'cell' in c) ? mappingBlock(lines, expected) : undefined;
  for (const c of changes) {
    const ok = 'cell' in c ? cells?.set(c) : 'pin' in c ? pins?.set(c.pin, c.shard) : pins?.unpin(c.unpin);
    if (!ok) return undefined;
  }
  const edited = [...(pins?.changed ?? []), ...(cells?.changed ?? [])];
  const after = render(lines, edited, [...(pins?.added ?? []), ...(cells?.added ?? [])]);
  const check = readConfigText(after, '');
  return 'data' in check && isDeepStrictEqual(check.data, expected) ? { text: after, data: check.data } : undefined;
}

/** The lines after `head` (exclusive) that belong to its block: more indented, comments and blanks. */
function blockOf(lines: readonly string[], head: RegExp): { from: number; last: number } | undefined {
  const heads = lines.flatMap((l, i) => (head.test(l) ? [i] : []));
  if (heads.length !== 1) return undefined;
  const at = heads[0]!;
  const indent = /^ */.exec(lines[at]!)![0].length;
  let last = -1;
  for (let i = at + 1; i < lines.length; i++) {
    const l = lines[i]!.replace(/\r$/, '');
    if (/^\s*(#.*)?$/.test(l)) continue;
    const own = /^ */.exec(l)![0].length;
    if (own < indent || (own === indent && !l.slice(own).startsWith('- '))) break;
    last = i;
  }
  return last < 0 ? undefined : { from: at + 1, last };
}

/** A line to write in place of line `at` (undefined: delete it), or after the block's last line. */
interface Edited {
  at: number;
  text: () => string | undefined;
}
interface Added {
  after: number;
  text: () => string | undefined;
}

function render(lines: readonly string[], edited: readonly Edited[], added: readonly Added[]): string {
  const at = new Map(edited.map((e) => [e.at, e]));
  const after = new Map<number, Added[]>();
  for (const a of added) after.set(a.after, [...(after.get(a.after) ?? []), a]);
  const out: string[] = [];
  lines.forEach((line, i) => {
    const e = at.get(i);
    const cr = line.endsWith('\r') ? '\r' : '';
    if (!e) out.push(line);
    else {
      const t = e.text();
      if (t !== undefined) out.push(t + cr);
    }
    for (const a of after.get(i) ?? []) {
      const t = a.text();
      if (t !== undefined) out.push(t + cr);
    }
  });
  return out.join('\n');
}

const comment = (c: string | undefined) => (c === undefined ? '' : ` ${c}`);
const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** The `pins:` block of a jump config: its one-line pins by tenant, and the pin edits on them. */
function pinBlock(lines: readonly string[], data: { strategy?: { kind?: unknown; pins?: unknown } } | null) {
  const pins = data?.strategy?.pins;
  if (data?.strategy?.kind !== 'jump' || !isObject(pins)) return undefined;
  const block = blockOf(lines, /^ +pins: *(?:#.*)?\r?$/);
  if (!block) return undefined;
  type Pin = { key: string; value: string; comment?: string; gone?: boolean };
  const byKey = new Map<string, { at: number; pin: Pin } | null>();
  let indent: string | undefined;
  for (let i = block.from; i <= block.last; i++) {
    const p = pinLine(lines[i]!);
    if (!p) continue;
    indent ??= p.indent;
    byKey.set(p.key, byKey.has(p.key) || p.indent !== indent ? null : { at: i, pin: p });
  }
  if (indent === undefined) return undefined;
  const changed: Edited[] = [];
  const added: Added[] = [];
  const line = (p: Pin) => () => (p.gone ? undefined : `${indent}${p.key}: ${p.value}${comment(p.comment)}`);
  return {
    changed,
    added,
    set(tenant: string, shard: string): boolean {
      const found = byKey.get(tenant);
      if (found === null || !pinLine(`${indent}${tenant}: ${shard}`) || tenant.length > 1000) return false;
      if (found && !found.pin.gone) {
        found.pin.value = shard;
        if (found.at >= 0) changed.push({ at: found.at, text: line(found.pin) });
      } else {
        // yaml adds a new key after the map's last pair
        const pin: Pin = { key: tenant, value: shard };
        byKey.set(tenant, { at: -1, pin });
        added.push({ after: block.last, text: line(pin) });
      }
      pins[tenant] = shard;
      return true;
    },
    unpin(tenant: string): boolean {
      const found = byKey.get(tenant);
      if (!found || found.pin.gone || !Object.hasOwn(pins, tenant)) return false;
      found.pin.gone = true;
      if (found.at >= 0) changed.push({ at: found.at, text: line(found.pin) });
      delete pins[tenant];
      return Object.keys(pins).length > 0; // yaml writes an emptied map as `pins: {}`: its path does that
    },
  };
}

/** The `mapping:` block of an h3 config: its one-line entries by cell, and `mapping set` on them. */
function mappingBlock(lines: readonly string[], data: { strategy?: { kind?: unknown; mapping?: unknown } } | null) {
  const mapping = data?.strategy?.mapping;
  if (data?.strategy?.kind !== 'h3' || !Array.isArray(mapping) || mapping.length === 0) return undefined;
  const block = blockOf(lines, /^ *mapping: *(?:#.*)?\r?$/);
  if (!block) return undefined;
  type Entry = { fields: Record<string, string>; comment?: string };
  const byCell = new Map<string, { at: number; entry: Entry }>();
  let indent: string | undefined;
  for (let i = block.from; i <= block.last; i++) {
    const e = flowEntryLine(lines[i]!.replace(/\r$/, ''));
    if (!e) continue;
    indent ??= e.indent;
    const cell = e.entry.cell!.toLowerCase();
    if (!byCell.has(cell) && e.indent === indent) byCell.set(cell, { at: i, entry: { fields: e.entry, comment: e.comment } });
  }
  if (indent === undefined) return undefined;
  // the data's items by cell, the first of each as the Document edit finds it
  const items = new Map<string, Record<string, unknown>>();
  for (const it of mapping) if (isObject(it) && !items.has(String(it.cell).toLowerCase())) items.set(String(it.cell).toLowerCase(), it);
  const changed: Edited[] = [];
  const added: Added[] = [];
  const line = (e: Entry) => () => flowLine(indent!, e.fields, e.comment);
  return {
    changed,
    added,
    set(c: { cell: string; shard: string; region?: string; status?: string }): boolean {
      const cell = c.cell.toLowerCase();
      const item = items.get(cell);
      const found = byCell.get(cell);
      const fields: Record<string, string> = found ? found.entry.fields : { cell: c.cell };
      // in the order the Document edit sets them: a key it adds goes last
      fields.shard = c.shard;
      if (c.region !== undefined) fields.region = c.region;
      if (c.status !== undefined) fields.capacity_status = c.status;
      // plain scalars yaml reads back as these strings (the fast reader's own test), else the Document edit
      if (!Object.entries(fields).every(([k, v]) => flowEntryLine(k === 'cell' ? `- { cell: ${v}, shard: s }` : `- { cell: ${c.cell}, shard: ${v} }`))) return false;
      if (flowLine(indent!, fields, found?.entry.comment) === undefined) return false;
      if (found) {
        if (!item) return false;
        Object.assign(item, fields, { cell: item.cell });
        if (found.at >= 0) changed.push({ at: found.at, text: line(found.entry) });
      } else {
        if (item) return false; // the cell is an entry this does not read: the Document edit it is
        const entry: Entry = { fields };
        const fresh = { ...fields };
        mapping.push(fresh);
        items.set(cell, fresh);
        byCell.set(cell, { at: -1, entry });
        added.push({ after: block.last, text: line(entry) });
      }
      return true;
    },
  };
}

/**
 * `- { cell: …, shard: … }` as yaml writes a flow map item, or undefined where yaml would write it
 * over several lines: its flow collections break when the items and their separators pass 80
 * characters (`lineWidth`), the indentation not counted (yaml's stringifyFlowCollection).
 */
function flowLine(indent: string, fields: Record<string, string>, c: string | undefined): string | undefined {
  const items = Object.entries(fields).map(([k, v], i, all) => `${k}: ${v}${i < all.length - 1 ? ',' : ''}`);
  if (items.reduce((sum, it) => sum + it.length + 2, 2) > 80) return undefined;
  return `${indent}- { ${items.join(' ')} }${comment(c)}`;
}
