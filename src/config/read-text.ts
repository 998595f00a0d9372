import { isPair, isScalar, isSeq, visit, type Document } from 'yaml';
import { exactJson } from './json-text.js';
import { formatPath } from './key-path.js';
import { foldMappingLines, unfoldMappingLines } from './mapping-lines.js';
import { foldPinLines, unfoldPinLines } from './pin-lines.js';
import { parseUniqueKeys } from './unique-keys.js';

/**
 * Config text (YAML or JSON) → plain data, or the syntax problems as `file: message` lines.
 *
 * The `yaml` parser needs seconds for tens of thousands of mapping entries, so the formats users have
 * take a fast path first: JSON through `JSON.parse` (json-text.ts), YAML with its one-line mapping
 * entries or pins read by regular expressions (mapping-lines.ts, pin-lines.ts). A fast path returns
 * data only when it can prove it equals what the full parser gives; whenever it cannot (or something is wrong), the text is
 * read again by the full parser, whose errors carry line numbers. The result is the same either way.
 */
export function readConfigText(text: string, file: string): { data: unknown } | { errors: string[] } {
  const json = exactJson(text);
  if (json) return json;
  for (const fold of [foldMapping, foldPins]) {
    const folded = fold(text);
    if (!folded) continue;
    const doc = parseUniqueKeys(folded.text);
    const data = doc.errors.length === 0 ? folded.unfold(doc.toJS()) : undefined;
    if (data !== undefined) return { data };
  }
  return readSlowly(text, file);
}

/** A fast path: the text with its runs of entry lines folded, and the way back from its data. */
type Fold = (text: string) => { text: string; unfold: (data: unknown) => unknown | undefined } | undefined;
const foldMapping: Fold = (text) => {
  const f = foldMappingLines(text);
  return f && { text: f.text, unfold: (data) => unfoldMappingLines(data, f) };
};
const foldPins: Fold = (text) => {
  const f = foldPinLines(text);
  return f && { text: f.text, unfold: (data) => unfoldPinLines(data, f) };
};

/** The full parser on the original text: its data, or its errors with line and column. */
function readSlowly(text: string, file: string): { data: unknown } | { errors: string[] } {
  const doc = parseUniqueKeys(text, { prettyErrors: true });
  if (doc.errors.length === 0) return { data: doc.toJS() };
  const repeated = duplicateKeyPaths(doc, new Set(doc.errors.flatMap((e) => (e.code === 'DUPLICATE_KEY' ? [e.pos[0]] : []))));
  return {
    errors: doc.errors.map((e) => {
      const message = firstLine(e.message);
      if (e.code !== 'DUPLICATE_KEY') return `${file}: ${message}`;
      const key = repeated.get(e.pos[0]);
      return key ? `${file}: ${key}: key appears twice (${message.replace(/^Map keys must be unique at /, '')})` : `${file}: ${message}`;
    }),
  };
}

/**
 * `strategy.pins.t1`: the key path of each repeated key, by the offset it starts at. One walk for
 * all of them: a file can repeat thousands of its 100,000 pins.
 */
function duplicateKeyPaths(doc: Document, offsets: ReadonlySet<number>): Map<number, string> {
  const found = new Map<number, string>();
  if (offsets.size === 0) return found;
  visit(doc, {
    Pair(_, pair, ancestors) {
      const at = isScalar(pair.key) ? pair.key.range?.[0] : undefined;
      if (at === undefined || !offsets.has(at)) return undefined;
      const path: (string | number)[] = [];
      const chain = [...ancestors, pair];
      chain.forEach((node, i) => {
        if (isPair(node) && isScalar(node.key)) path.push(String(node.key.value));
        else if (isSeq(node)) path.push(node.items.indexOf(chain[i + 1] as never));
      });
      found.set(at, formatPath(path));
      return found.size === offsets.size ? visit.BREAK : undefined;
    },
  });
  return found;
}

const firstLine = (s: string) => (s.split('\n')[0] ?? s).replace(/:\s*$/, '');
