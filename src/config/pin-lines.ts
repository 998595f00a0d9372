import { foldRuns, type FoldedRuns } from './fold-runs.js';

/**
 * The fast path for the bulk of a jump config: its `strategy.pins`, one `tenant: shard` per line as
 * `pin` and yaml write them. The YAML parser takes about a second over 50,000 of them; such a line,
 * with a plain key and value that YAML's core schema reads as strings, means exactly one pair of
 * strings, which a regular expression reads at once.
 *
 * As for the mapping's entry lines (mapping-lines.ts): every run of consecutive such lines (same
 * indentation) becomes ONE placeholder pair `<token>N: run`, the YAML parser reads the much shorter
 * rest, and the pairs are put back in the place of their placeholder. This is exact only if every
 * placeholder landed as a key of `strategy.pins` and no key of a run is another key of that map
 * (YAML refuses a repeated key), which `unfoldPinLines` checks: otherwise the caller reads the
 * original text the slow way, which says where the problem is. Anything else (quoted keys or values,
 * flow style, a key YAML reads as a number or a boolean, tabs) is left to the YAML parser.
 */
export type FoldedPins = FoldedRuns<[string, string]>;

// `    tenant-7: s1`, an optional comment (a space before its #; a plain scalar may hold ` #` no other way)
const PIN_LINE = /^( +)([A-Za-z0-9_][\w.-]*): +([A-Za-z][\w-]*) *(?: (#.*?))?\r?$/;
// Plain scalars YAML's core schema reads as something other than a string (yaml's own tests):
// booleans, null, and the numbers a key of the characters above can spell.
const NOT_A_STRING = /^(?:[Tt]rue|TRUE|[Ff]alse|FALSE|[Nn]ull|NULL)$/;
const NUMBER = /^(?:[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+|(?:[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+|[0-9]+\.[0-9]*)$/;

/** The pair a line means, if it is a pin line the fast path may read: its indentation, key, value and comment. */
export function pinLine(line: string): { indent: string; key: string; value: string; comment?: string } | undefined {
  const m = PIN_LINE.exec(line);
  if (!m) return undefined;
  const [, indent, key, value, comment] = m;
  if (NOT_A_STRING.test(key!) || NUMBER.test(key!) || key === '__proto__' || NOT_A_STRING.test(value!)) return undefined;
  return { indent: indent!, key: key!, value: value!, ...(comment !== undefined ? { comment } : {}) };
}

export function foldPinLines(text: string): FoldedPins | undefined {
  const entryAt = (lines: readonly string[], i: number) => {
    const p = pinLine(lines[i] ?? '');
    return p && { indent: p.indent, entry: [p.key, p.value] as [string, string], next: i + 1 };
  };
  return foldRuns(text, 'shardctl-pins-run-', entryAt, (indent, name) => `${indent}${name}: run`);
}

/**
 * The data of the original text from the data of the folded one, or undefined unless every
 * placeholder is a key of `strategy.pins` (once, the token nowhere else) and no key repeats.
 */
export function unfoldPinLines(data: unknown, folded: FoldedPins): unknown | undefined {
  const pins = (data as { strategy?: { pins?: unknown } } | null)?.strategy?.pins;
  if (pins === null || typeof pins !== 'object' || Array.isArray(pins)) return undefined;
  if (JSON.stringify(data).split(folded.token).length - 1 !== folded.runs.length) return undefined;
  const out: Record<string, unknown> = {};
  const keys = new Set<string>();
  let placed = 0;
  const put = (k: string, v: unknown) => {
    if (keys.has(k)) return false;
    keys.add(k);
    // as yaml's toJS does: a name the object already answers to (__proto__, toString) becomes its own
    if (k in Object.prototype) Object.defineProperty(out, k, { value: v, writable: true, enumerable: true, configurable: true });
    else out[k] = v;
    return true;
  };
  for (const [k, v] of Object.entries(pins)) {
    if (k === `${folded.token}${placed}` && v === 'run') {
      for (const [rk, rv] of folded.runs[placed++]!) if (!put(rk, rv)) return undefined;
    } else if (!put(k, v)) return undefined;
  }
  if (placed !== folded.runs.length) return undefined;
  const d = data as { strategy: object };
  return { ...d, strategy: { ...d.strategy, pins: out } };
}
