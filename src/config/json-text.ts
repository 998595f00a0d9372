/**
 * The fast path for a config written as JSON: `JSON.parse` (milliseconds for megabytes, where a YAML
 * parser takes seconds), with the one thing it does not do for us, refusing a duplicate key, proven
 * by counting rather than by a parser of our own.
 *
 * Why the count proves it: once `JSON.parse` has accepted the text, it is valid JSON, so a `"` outside
 * a string always opens a string token, and the scan below (a whole string token at a time, escapes
 * included) visits exactly the string tokens. A string token followed by `:` is an object key, and
 * every key is one. `JSON.parse` keeps the last of two equal keys in one object, so the keys of the
 * parsed objects (own keys, `__proto__` included: JSON.parse defines it as an own property) add up
 * to the keys in the text exactly when no object repeats a key.
 */
const STRING_TOKEN = /"(?:[^"\\]|\\.)*"(\s*:)?/gs;

/** The value of `text` if it is JSON without a repeated key; undefined when it is not (let YAML say why). */
export function exactJson(text: string): { data: unknown } | undefined {
  if (!/^\s*[{[]/.test(text)) return undefined;
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return undefined; // not JSON (or a JSON syntax error): the YAML reader reports it with its line
  }
  let keysInText = 0;
  for (const m of text.matchAll(STRING_TOKEN)) if (m[1] !== undefined) keysInText++;
  return keysInText === countKeys(data) ? { data } : undefined;
}

function countKeys(value: unknown): number {
  if (Array.isArray(value)) return value.reduce((n: number, v) => n + countKeys(v), 0);
  if (value === null || typeof value !== 'object') return 0;
  let n = 0;
  for (const k of Object.keys(value)) n += 1 + countKeys((value as Record<string, unknown>)[k]);
  return n;
}
