import { isMap, isScalar, LineCounter, parseDocument, visit, YAMLParseError, type Document } from 'yaml';

/**
 * `parseDocument` with yaml's duplicate-key refusal (`uniqueKeys: true`) done in linear time.
 *
 * yaml checks each new key of a map against every key before it (`items.some(...)`), so a map of n
 * keys costs n²/2 comparisons: 50,000 `pins` took minutes. Its test is `a === b` for two key nodes,
 * or two scalar keys whose values are `===`. Nodes are never shared between keys, so only the second
 * part can hold, and a Set of each map's primitive scalar key values tests the same thing at once
 * (NaN aside: `NaN !== NaN`, so yaml never calls two `.nan` keys equal, nor does this). Object
 * values (a `!!timestamp`'s Date, `!!binary`'s bytes) are new objects per key: never `===`, skipped.
 *
 * The error is the one yaml raises, at the same offset (the key node's start), inserted among the
 * others in offset order, and with `prettyErrors` the same first line, `… at line L, column C`.
 */
export function parseUniqueKeys(text: string, opts: { prettyErrors?: boolean } = {}): Document.Parsed {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: opts.prettyErrors ?? false, lineCounter, uniqueKeys: false });
  const repeated: YAMLParseError[] = [];
  visit(doc, {
    Map(_, map) {
      if (!isMap(map)) return;
      const seen = new Set<unknown>();
      for (const pair of map.items) {
        if (!isScalar(pair.key)) continue;
        const v = pair.key.value;
        if ((typeof v === 'object' && v !== null) || Number.isNaN(v)) continue;
        if (!seen.has(v)) {
          seen.add(v);
          continue;
        }
        const at = pair.key.range![0];
        const e = new YAMLParseError([at, at + 1], 'DUPLICATE_KEY', 'Map keys must be unique');
        if (opts.prettyErrors) {
          const { line, col } = lineCounter.linePos(at);
          e.message += ` at line ${line}, column ${col}`;
        }
        repeated.push(e);
      }
    },
  });
  repeated.sort((a, b) => a.pos[0] - b.pos[0]); // a map is visited before the maps inside it
  if (repeated.length) doc.errors.splice(0, doc.errors.length, ...merged(doc.errors, repeated));
  return doc;
}

/** yaml's errors in their own order, each repeated key placed before the first one after it. */
function merged(own: readonly YAMLParseError[], repeated: readonly YAMLParseError[]): YAMLParseError[] {
  const out: YAMLParseError[] = [];
  let r = 0;
  for (const e of own) {
    while (r < repeated.length && repeated[r]!.pos[0] < e.pos[0]) out.push(repeated[r++]!);
    out.push(e);
  }
  return [...out, ...repeated.slice(r)];
}
