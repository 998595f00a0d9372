/**
 * The fast path for the bulk of an h3 config: the `strategy.mapping` entries written one per line as
 * `plan --propose-mapping` and `mapping set` write them, `- { cell: 831f8dfffffffff, shard: s1 }`.
 * A YAML parser takes seconds over tens of thousands of them; each such line means exactly one map of
 * plain strings, which a regular expression reads in microseconds.
 *
 * Every run of consecutive such lines (same indentation) is replaced by ONE placeholder item
 * `- <token>`, the much shorter rest is read by the YAML parser, and the entries are put back where
 * their placeholder landed. This is exact only if each placeholder landed as an item of
 * `strategy.mapping`, so that is checked afterwards (`unfoldMappingLines`): a run that was really
 * inside a block scalar, a multi-line string or another list leaves its placeholder somewhere else,
 * and then the caller reads the original text the slow way. Lines in any other shape (quoted values,
 * other keys, a block-style entry) are simply left to the YAML parser.
 */
export interface FoldedMapping {
  /** the text with each run of entry lines replaced by one placeholder item */
  text: string;
  /** the entries of each run, in order; run i's placeholder is `${token}${i}` */
  runs: Record<string, string>[][];
  token: string;
}

// One entry: cell, shard, then optionally region and capacity_status, plain values, an optional comment.
const ENTRY =
  /^( *)- \{ *cell: *([0-9A-Fa-f]+) *, *shard: *([A-Za-z][A-Za-z0-9_-]*) *(?:, *region: *([A-Za-z][A-Za-z0-9_-]*) *)?(?:, *capacity_status: *(active|full|read-only) *)?\} *(?: #.*)?$/;
// Plain scalars YAML's core schema reads as something other than a string: such a value goes the slow way.
const NOT_A_STRING = /^(?:[Tt]rue|TRUE|[Ff]alse|FALSE|[Nn]ull|NULL)$/;
// A hex cell is a string in YAML only if it cannot be read as an integer or a float (digits and e/E).
const HEX_LETTER = /[A-Da-dFf]/;
// Fewer entries than this are not worth a placeholder.
const MIN_RUN = 16;

export function foldMappingLines(text: string): FoldedMapping | undefined {
  // %YAML 1.1 changes how plain scalars are read (yes/no, 0b…, 1_000): no fast path under a directive.
  if (/^%/m.test(text)) return undefined;
  let token = 'shardctl-mapping-run-';
  while (text.includes(token)) token += 'x';
  const lines = text.split('\n');
  const out: string[] = [];
  const runs: Record<string, string>[][] = [];
  let i = 0;
  while (i < lines.length) {
    const first = entryOf(lines[i]!);
    if (!first) {
      out.push(lines[i++]!);
      continue;
    }
    const run = [first.entry];
    let j = i + 1;
    for (let next = entryOf(lines[j] ?? ''); next && next.indent === first.indent; next = entryOf(lines[++j] ?? '')) run.push(next.entry);
    if (run.length < MIN_RUN) {
      out.push(...lines.slice(i, j));
    } else {
      out.push(`${first.indent}- ${token}${runs.length}`);
      runs.push(run);
    }
    i = j;
  }
  return runs.length ? { text: out.join('\n'), runs, token } : undefined;
}

function entryOf(line: string): { indent: string; entry: Record<string, string> } | undefined {
  const m = ENTRY.exec(line.endsWith('\r') ? line.slice(0, -1) : line);
  if (!m) return undefined;
  const [, indent, cell, shard, region, status] = m;
  if (!HEX_LETTER.test(cell!) || NOT_A_STRING.test(shard!) || (region && NOT_A_STRING.test(region))) return undefined;
  const entry: Record<string, string> = { cell: cell!, shard: shard! };
  if (region) entry.region = region;
  if (status) entry.capacity_status = status;
  return { indent: indent!, entry };
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
