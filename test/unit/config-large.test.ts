import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cellToChildren, getRes0Cells } from 'h3-js';
import { Document, isMap, isSeq, parse } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { foldMappingLines, unfoldMappingLines } from '../../src/config/mapping-lines.js';
import { assertReadsAsYaml, configRefusal } from '../helpers/config-text.js';

/**
 * Configs with tens of thousands of h3 mapping entries load through fast paths (JSON.parse; the
 * one-line entries read by a regular expression). Oracle: the object the text was written from, and
 * for the tricky shapes the `yaml` package's full parse of the same text.
 */
const env = { PW: 'hunter2-pw' };

function cells(n: number, res: number): string[] {
  const out: string[] = [];
  for (const r0 of getRes0Cells()) for (const c of cellToChildren(r0, res)) if (out.length < n) out.push(c);
  return out;
}

function configObject(n: number) {
  const res = n > 40_000 ? 4 : 3;
  return {
    source: 'postgres://app:${PW}@mono:5432/loc',
    strategy: { kind: 'h3', shardResolution: res, defaultShard: 's0', mapping: cells(n, res).map((cell, i) => ({ cell, shard: `s${i % 3}` })) },
    shards: [0, 1, 2].map((i) => ({ id: `s${i}`, primary: `postgres://app:\${PW}@shard${i}:5432/loc` })),
    tables: [{ name: 'drivers', lat: 'lat', lng: 'lng' }, { name: 'trips', via: 'driver_id -> drivers.id' }],
  };
}

/** YAML as `plan --propose-mapping` and `mapping set` write it: one `- { cell: …, shard: … }` per line. */
function lineYaml(obj: object): string {
  const doc = new Document(obj);
  const seq = doc.getIn(['strategy', 'mapping'], true);
  if (isSeq(seq)) for (const item of seq.items) if (isMap(item)) item.flow = true;
  return doc.toString({ flowCollectionPadding: true });
}

const refusal = (text: string, file = 'big.yaml') => configRefusal(text, file, env);

describe('large configs load exactly through the fast paths', () => {
  const big = configObject(50_000);
  const expected = big.strategy.mapping.map((m) => ({ cell: m.cell, shard: m.shard }));

  for (const [format, text] of [
    ['YAML one entry per line', lineYaml(big)],
    ['JSON', JSON.stringify(big, null, 2)],
    ['YAML block entries', new Document(big).toString()],
  ] as const) {
    it(`a 50,000-entry mapping as ${format} loads, every entry as written`, () => {
      const c = parseConfig(text, 'big', { env });
      assert.equal(c.strategy.kind, 'h3');
      const got = c.strategy.kind === 'h3' ? c.strategy.mapping.map((m) => ({ cell: m.cell, shard: m.shard })) : [];
      assert.deepEqual(got, expected);
      assert.equal(c.shards[2]!.primary, 'postgres://app:hunter2-pw@shard2:5432/loc');
    });
  }

  it('a duplicate key in JSON is refused naming its key path and line', () => {
    const text = JSON.stringify(configObject(5_000), null, 2).replace('"shard": "s1"', '"shard": "s1", "shard": "s2"');
    const lines = refusal(text, 'big.json');
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /^big\.json: strategy\.mapping\[1\]\.shard: key appears twice \(line \d+, column \d+\)$/);
    const top = JSON.stringify({ ...configObject(20), source: 'x' }).replace('"source":"x"', '"source":"postgres://app:hunter2-pw@a/b","source":"postgres://b@c/d"');
    assert.deepEqual(refusal(top, 'c.json'), ['c.json: source: key appears twice (line 1, column 43)']);
  });

  it('a duplicate key next to folded entry lines is refused naming it', () => {
    const text = lineYaml(configObject(5_000)).replace('kind: h3\n', 'kind: h3\n  kind: jump\n');
    assert.deepEqual(refusal(text), ['big.yaml: strategy.kind: key appears twice (line 4, column 3)']);
  });

  it('a syntax error among entry lines is reported with its line', () => {
    const lines = lineYaml(configObject(100)).split('\n');
    const at = lines.findIndex((l) => l.includes('shard: s2 }'));
    lines[at] = lines[at]!.replace(' }', '');
    const got = refusal(lines.join('\n'));
    assert.ok(got.some((l) => l.includes(`line ${at + 2}`) || l.includes(`line ${at + 1}`)), got.join('\n'));
  });

  it('a bad entry among folded ones is refused at its index, the password never echoed', () => {
    const obj = configObject(5_000);
    obj.strategy.mapping[4321]!.shard = 's9';
    assert.deepEqual(refusal(lineYaml(obj)), ['big.yaml: strategy.mapping[4321].shard: unknown shard "s9" (shards: s0, s1, s2)']);
  });

  it('thousands of bad entries: each reported once, shape and cross-key problems together', () => {
    const obj = configObject(5_000);
    obj.strategy.mapping.forEach((m, i) => {
      if (i % 4 === 1) m.shard = '7x'; // not a shard id (the schema)
      if (i % 4 === 2) m.shard = 's7'; // no such shard (the cross-key check)
    });
    const lines = refusal(lineYaml(obj));
    assert.equal(lines[0], 'big.yaml: 2500 problems in the configuration');
    assert.equal(lines.filter((l) => / strategy\.mapping\[\d+\]\.shard: must start with a letter/.test(l)).length, 1250);
    assert.equal(lines.filter((l) => / strategy\.mapping\[\d+\]\.shard: unknown shard "s7"/.test(l)).length, 1250);
  });
});

describe('the fast paths mean what the full YAML parser means', () => {
  const entries = cells(40, 3).map((cell, i) => `    - { cell: ${cell}, shard: s${i % 2} }`);
  const blocks = cells(40, 3).map((cell, i) => `    - cell: ${cell}\n      shard: s${i % 2}${i % 3 ? '' : '\n      region: eu'}${i % 5 ? '' : '\n      capacity_status: full # hot'}`);
  const head = 'source: postgres://a@b/c\nstrategy:\n  kind: h3\n  defaultShard: s0\n';
  const cases: Record<string, string> = {
    'plain runs, a comment, a quoted and a block entry between': `${head}  mapping:\n${entries.slice(0, 20).join('\n')}\n    # a comment\n${entries.slice(20, 30).join('\n')} # trailing\n    - { cell: "${cells(41, 3)[40]}", shard: s1 }\n    - cell: ${cells(42, 3)[41]}\n      shard: s0\n${entries.slice(30).join('\n')}\n`,
    'entry lines inside a block scalar are text': `${head}  note: |\n${entries.join('\n')}\n  mapping: []\n`,
    'entry lines in another list': `${head}  mapping: []\nother:\n${entries.join('\n')}\n`,
    'entry lines under an alias': `${head}  mapping: &m\n${entries.join('\n')}\nagain: *m\n`,
    'an entry line continued by a more indented line': `${head}  mapping:\n${entries.join('\n')}\n        continued\n`,
    'CRLF line ends': `${head}  mapping:\n${entries.join('\n')}\n`.replace(/\n/g, '\r\n'),
    'shard ids YAML reads as booleans or null': `${head}  mapping:\n${entries.map((e) => e.replace(/s1 }/, 'true }').replace(/s0 }/, 'Null }')).join('\n')}\n`,
    'a %YAML 1.1 directive': `%YAML 1.1\n---\n${head}  mapping:\n${entries.join('\n')}\n`,
    'block entries, with region and capacity_status': `${head}  mapping:\n${blocks.join('\n')}\n`,
    'a block entry followed by another key of its own': `${head}  mapping:\n${blocks.join('\n')}\n      note: x\n`,
    'a block entry with its shard twice': `${head}  mapping:\n${blocks.join('\n')}\n      shard: s9\n`,
    'a block entry whose shard goes on over the next line': `${head}  mapping:\n${blocks.join('\n')}\n\n        more\n`,
    'no space after a colon in a flow entry': `${head}  mapping:\n${entries.map((e) => e.replace('cell: ', 'cell:')).join('\n')}\n`,
    'JSON with __proto__ and escaped quotes': JSON.stringify({ a: { '__proto__': 1, 'x"y:': 'q\\":', b: [{ c: 1 }] } }),
  };
  it('the fast path is taken for the shapes shardctl and people write', () => {
    for (const name of ['plain runs, a comment, a quoted and a block entry between', 'CRLF line ends', 'block entries, with region and capacity_status']) {
      const folded = foldMappingLines(cases[name]!);
      assert.ok(folded && folded.runs.flat().length >= 20, `${name}: folded`);
      assert.deepEqual(unfoldMappingLines(parse(folded.text), folded), parse(cases[name]!), name);
    }
  });

  for (const [name, text] of Object.entries(cases)) {
    it(name, () => void assertReadsAsYaml(text));
  }
});
