import { foldRuns, type FoldedRuns } from './fold-runs.js';

/**
 * The fast path for the bulk of an h3 config: the `strategy.mapping` entries written one per line as
 * `plan --propose-mapping` and `mapping set` write them, `- { cell: 831f8dfffffffff, shard: s1 }`.
 * A YAML parser takes seconds over tens of thousands of them; each such line, outside a string,
 * means exactly one map of plain strings, which a regular expression reads in microseconds.
 *
 * Every run of consecutive such lines (same indentation) is replaced by ONE placeholder item
 * `- <token>`, the much shorter rest is read by the YAML parser, and the entries are put back where
 * their placeholder landed. This is exact only if each placeholder landed as an item of
 * `strategy.mapping`, so that is checked afterwards (`unfoldMappingLines`): a run that was really
 * inside a block scalar, a multi-line string or another list leaves its placeholder somewhere else,
 * and then the caller reads the original text the slow way. Entries written by hand in block style
 * (`- cell: …` then `  shard: …`) are read the same way; anything else (quoted values, other keys
 * or key orders, tabs) is simply left to the YAML parser.
 */
export type FoldedMapping = FoldedRuns<Record<string, string>>;

// One entry on one line: cell, shard, then optionally region and capacity_status, plain values, an
// optional comment (a space after each colon: in a flow mapping `cell:8…` is one plain scalar).
// Or the same keys in block style, one per line, in that order:
//   - cell: 831f8dfffffffff
//     shard: s1
const FLOW_ENTRY =
  /^( *)- \{ *cell: +([0-9A-Fa-f]+) *, *shard: +([\w-]+) *(?:, *region: +([\w-]+) *)?(?:, *capacity_status: +([\w-]+) *)?\} *(?: (#.*))?$/;
const BLOCK_CELL = /^( *)- cell: +([0-9A-Fa-f]+) *(?: #.*)?$/;
const BLOCK_KEY = /^( *)(shard|region|capacity_status): +([\w-]+) *(?: #.*)?$/;
const ID = /^[A-Za-z][A-Za-z0-9_-]*$/;
const STATUS = /^(?:active|full|read-only)$/;
// Plain scalars YAML's core schema reads as something other than a string: such a value goes the slow way.
const NOT_A_STRING = /^(?:[Tt]rue|TRUE|[Ff]alse|FALSE|[Nn]ull|NULL)$/;
// A hex cell is a string in YAML only if it cannot be read as an integer or a float (digits and e/E).
const HEX_LETTER = /[A-Da-dFf]/;

export function foldMappingLines(text: string): FoldedMapping | undefined {
  return foldRuns(text, 'shardctl-mapping-run-', entryAt, (indent, name) => `${indent}- ${name}`);
}

/** The entry starting at line i, in either shape, and the line after it. */
function entryAt(lines: readonly string[], i: number): { indent: string; entry: Record<string, string>; next: number } | undefined {
  const line = (k: number) => (lines[k] ?? '').replace(/\r$/, '');
  if (FLOW_ENTRY.test(line(i))) {
    const flow = flowEntryLine(line(i));
    return flow && { indent: flow.indent, entry: flow.entry, next: i + 1 };
  }
  const head = BLOCK_CELL.exec(line(i));
  const shard = head && BLOCK_KEY.exec(line(i + 1));
  if (!head || !shard || shard[1] !== `${head[1]}  ` || shard[2] !== 'shard') return undefined;
  let next = i + 2;
  const more: Record<string, string> = {};
  for (const key of ['region', 'capacity_status']) {
    const m = BLOCK_KEY.exec(line(next));
    if (m && m[1] === shard[1] && m[2] === key) {
      more[key] = m[3]!;
      next++;
    }
  }
  const entry = entryOf(head[2]!, shard[3]!, more.region, more.capacity_status);
  return entry && { indent: head[1]!, entry, next };
}

/** The entry a one-line flow entry means (its `\r` stripped), with its indentation and comment. */
export function flowEntryLine(text: string): { indent: string; entry: Record<string, string>; comment?: string } | undefined {
  const flow = FLOW_ENTRY.exec(text);
  if (!flow) return undefined;
  const [, indent, cell, shard, region, status, comment] = flow;
  const entry = entryOf(cell!, shard!, region, status);
  return entry && { indent: indent!, entry, ...(comment !== undefined ? { comment } : {}) };
}

function entryOf(cell: string, shard: string, region?: string, status?: string): Record<string, string> | undefined {
  if (!HEX_LETTER.test(cell) || !ID.test(shard) || NOT_A_STRING.test(shard)) return undefined;
  if (region !== undefined && (!ID.test(region) || NOT_A_STRING.test(region))) return undefined;
  if (status !== undefined && !STATUS.test(status)) return undefined;
  const entry: Record<string, string> = { cell, shard };
  if (region !== undefined) entry.region = region;
  if (status !== undefined) entry.capacity_status = status;
  return entry;
}

/**
 * The data of the original text, from the data of the folded one: each placeholder replaced by its
 * run. Undefined unless every placeholder is an item of `strategy.mapping`, once, and the token
 * appears nowhere else (so no placeholder went into a string or another list).
 */
export function unfoldMappingLines(data: unknown, folded: FoldedMapping): unknown | undefined {
  const mapping = (data as { strategy?: { mapping?: unknown } } | null)?.strategy?.mapping;
  if (!Array.isArray(mapping)) return undefined;
  // the folded data is small (the runs are out of it): every occurrence of the token must be a placeholder
  if (JSON.stringify(data).split(folded.token).length - 1 !== folded.runs.length) return undefined;
  const items: unknown[] = [];
  let placed = 0;
  for (const item of mapping) {
    if (item === `${folded.token}${placed}`) for (const e of folded.runs[placed++]!) items.push({ ...e });
    else items.push(item);
  }
  if (placed !== folded.runs.length) return undefined;
  const d = data as { strategy: object };
  return { ...d, strategy: { ...d.strategy, mapping: items } };
}
