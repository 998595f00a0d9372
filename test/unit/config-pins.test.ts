import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Document, parse, parseDocument } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { foldPinLines, unfoldPinLines } from '../../src/config/pin-lines.js';
import { readConfigText } from '../../src/config/read-text.js';
import { parseUniqueKeys } from '../../src/config/unique-keys.js';
import { pinsObject, pinsYaml } from '../helpers/pins.js';
import { assertReadsAsYaml, configRefusal } from '../helpers/config-text.js';

/**
 * A jump config with tens of thousands of `pins` loads in linear time (yaml's own duplicate-key check
 * compares each key with every key before it). Oracle: the object the text was written from, and
 * yaml's own parse with its own check (`uniqueKeys: true`): the same data, the same errors.
 */
const env = { PW: 'hunter2-pw' };

const refusal = (text: string, file = 'big.yaml') => configRefusal(text, file, env);

describe('a jump config with 100,000 pins loads in linear time', () => {
  // before: minutes (yaml's check is quadratic); now seconds: the timeout only catches the quadratic
  it('every pin as written, block style', { timeout: 60_000 }, () => {
    const obj = pinsObject(100_000);
    assert.equal(pinsYaml(100), new Document(pinsObject(100)).toString());
    const c = parseConfig(pinsYaml(100_000), 'big.yaml', { env });
    assert.equal(c.strategy.kind, 'jump');
    assert.deepEqual(c.strategy.kind === 'jump' ? c.strategy.pins : {}, obj.strategy.pins);
  });

  it('a repeated pin is refused naming it and its line', { timeout: 60_000 }, () => {
    const lines = pinsYaml(100_000).split('\n');
    const at = lines.indexOf('    tenant-99998: s2');
    lines.splice(at + 1, 0, '    tenant-7: s1');
    assert.deepEqual(refusal(lines.join('\n')), [`big.yaml: strategy.pins.tenant-7: key appears twice (line ${at + 2}, column 5)`]);
  });
});

describe('thousands of repeated pins', () => {
  it('each refused with its key path and line, in one walk of the document', { timeout: 60_000 }, () => {
    const lines = pinsYaml(50_000).split('\n');
    const at = lines.indexOf('    tenant-49999: s1');
    assert.ok(at > 0);
    const again = Array.from({ length: 5_000 }, (_, i) => `    tenant-${i * 10}: s1`);
    lines.splice(at + 1, 0, ...again);
    const got = refusal(lines.join('\n'));
    assert.equal(got[0], 'big.yaml: 5000 problems in the configuration');
    assert.equal(got.length, 5_001);
    assert.equal(got[1], `big.yaml: strategy.pins.tenant-0: key appears twice (line ${at + 2}, column 5)`);
    assert.equal(got[5_000], `big.yaml: strategy.pins.tenant-49990: key appears twice (line ${at + 5_001}, column 5)`);
  });
});

describe('the linear duplicate-key check means what yaml`s own check means', () => {
  const cases: Record<string, string> = {
    'plain keys': 'a: 1\nb: 2\na: 3\n',
    'plain and quoted: the same string': 'a: 1\n"a": 2\n\'a\': 3\n',
    '007, 7 and 0o7: the same number': '007: a\n7: b\n0o7: c\n',
    '1e3 and 1000': '1e3: a\n1000: b\n',
    '"007" and 007: a string and a number': '"007": a\n007: b\n',
    'true, True and TRUE': 'true: a\nTrue: b\nTRUE: c\n',
    'null, ~ and an empty key': 'null: a\n~: b\n: c\n',
    '.nan twice: never equal': '.nan: a\n.NaN: b\n',
    '0 and -0': '0: a\n-0: b\n',
    '!!str 7 and 7': '!!str 7: a\n7: b\n',
    'an anchored key and its alias': '&k a: 1\n*k : 2\n',
    'an anchored key and its text': '&k a: 1\na: 2\n',
    'explicit ? keys': '? a\n: 1\n? a\n: 2\n? [x, y]\n: 3\n? [x, y]\n: 4\n',
    'a repeat inside a complex key': '? { a: 1, a: 2 }\n: x\n',
    'a flow map': 'm: { a: 1, b: 2, a: 3 }\n',
    'nested maps, repeats at several depths': 'x:\n  y:\n    a: 1\n    a: 2\n  y: 3\nx: 4\n',
    'maps in a list': 'l:\n  - a: 1\n    a: 2\n  - a: 1\n',
    'merge keys': 'base: &b { a: 1 }\nm:\n  <<: *b\n  <<: *b\n  a: 2\n',
    'CRLF': 'a: 1\r\nb: 2\r\na: 3\r\n',
    'a BOM': '\uFEFFa: 1\na: 2\n',
    'tabs after the colon': 'a:\t1\nb:\t2\na:\t3\n',
    'a timestamp key twice': '!!timestamp 2020-01-01: a\n!!timestamp 2020-01-01: b\n',
    'a syntax error and a repeat': 'a: 1\na: 2\nb: [\n',
    'a comment between': 'a: 1 # one\n# two\na: 2\n',
    'no repeat at all': 'a: 1\nb: { c: 2, d: [3] }\n',
  };
  for (const [name, text] of Object.entries(cases)) {
    it(name, () => {
      const oracle = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
      const got = parseUniqueKeys(text, { prettyErrors: true });
      const first = (m: string) => m.split('\n')[0]!.replace(/:\s*$/, '');
      assert.deepEqual(
        got.errors.map((e) => [e.code, e.pos[0], first(e.message)]),
        oracle.errors.map((e) => [e.code, e.pos[0], first(e.message)]),
      );
      if (oracle.errors.length === 0) assert.deepEqual(got.toJS(), oracle.toJS());
      assert.deepEqual(readConfigText(text, 'f'), oracle.errors.length ? readConfigText(text, 'f') : { data: oracle.toJS() });
    });
  }
});

describe('the pin-lines fast path means what the full YAML parser means', () => {
  const pins = Array.from({ length: 40 }, (_, i) => `    tenant-${i}: s${i % 2}`);
  const head = 'source: postgres://a@b/c\nstrategy:\n  kind: jump\n  key: tenant_id\n';
  const withKeys = (keys: string[]) => `${head}  pins:\n${pins.slice(0, 20).join('\n')}\n${keys.map((k) => `    ${k}: s1`).join('\n')}\n${pins.slice(20).join('\n')}\n`;
  const cases: Record<string, string> = {
    'plain runs, comments, a quoted key, a flow pair and a ? key between': `${head}  pins:\n${pins.slice(0, 20).join('\n')}\n    # a comment\n${pins.slice(20, 30).join('\n')} # trailing\n    "quoted": s1\n    ? explicit\n    : s0\n    flow: { a: b }\n${pins.slice(30).join('\n')}\n`,
    'keys YAML reads as numbers, booleans or null': withKeys(['007', '1e3', '0x1F', '0o17', '1.5', '12', 'true', 'False', 'null', '9tenant', '1e3x', '1_000', 'a.b-c', '_x']),
    'values YAML reads as booleans or null': `${head}  pins:\n${pins.map((p, i) => (i % 7 ? p : p.replace(/s\d$/, i % 2 ? 'true' : 'Null'))).join('\n')}\n`,
    '007 and 7 in the same map': withKeys(['007', '7']),
    'a key repeated inside a run': withKeys(['tenant-3']),
    'a key repeated in two runs': `${head}  pins:\n${pins.join('\n')}\n    "q": s1\n${pins.slice(0, 20).join('\n')}\n`,
    'a run key repeated by a quoted key': withKeys(['"tenant-5"']),
    '__proto__ in a run and quoted': withKeys(['__proto__', '"__proto__"', 'toString', 'constructor']),
    'CRLF line ends': `${head}  pins:\n${pins.join('\n')}\n`.replace(/\n/g, '\r\n'),
    'a BOM': `\uFEFF${head}  pins:\n${pins.join('\n')}\n`,
    'tabs after the colon': `${head}  pins:\n${pins.map((p) => p.replace(': ', ':\t')).join('\n')}\n`,
    'pin lines inside a block scalar are text': `${head}  note: |\n${pins.join('\n')}\n  pins: {}\n`,
    'pin lines in another map': `${head}  pins: {}\nother:\n${pins.join('\n')}\n`,
    'pin lines under an alias': `${head}  pins: &p\n${pins.join('\n')}\nagain: *p\n`,
    'a pin line continued by a more indented line': `${head}  pins:\n${pins.join('\n')}\n        continued\n`,
    'a %YAML 1.1 directive': `%YAML 1.1\n---\n${head}  pins:\n${pins.join('\n')}\n`,
    'two indentations': `${head}  pins:\n${pins.slice(0, 20).join('\n')}\n${pins.slice(20).map((p) => p.slice(2)).join('\n')}\n`,
    'a quoted multi-line string over pin lines': `${head}  note: "a\n${pins.join('\n')}\n    b"\n  pins: {}\n`,
  };
  it('the fast path is taken for the shapes shardctl and yaml write', () => {
    for (const name of ['plain runs, comments, a quoted key, a flow pair and a ? key between', 'CRLF line ends', 'keys YAML reads as numbers, booleans or null']) {
      const folded = foldPinLines(cases[name]!);
      assert.ok(folded && folded.runs.flat().length >= 20, `${name}: folded`);
      assert.deepEqual(unfoldPinLines(parse(folded.text), folded), parse(cases[name]!), name);
    }
  });
  it('generated keys of digits, e, x, o, dots, signs and letters: 200 files of 60 pins', () => {
    let seed = 26;
    const next = (n: number) => Math.floor(((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * n);
    const chars = '0123456789eExXoO._-+abfAF';
    let folded = 0;
    for (let f = 0; f < 200; f++) {
      // mostly plain tenants (runs to fold), a generated key now and then, in or between runs
      const keys = Array.from({ length: 60 }, (_, i) => (next(8) ? `t${i}` : Array.from({ length: 1 + next(5) }, () => chars[next(chars.length)]).join('')));
      const special = ['true', 'Null', 'e1', 'x-y', '007'];
      const text = `${head}  pins:\n${keys.map((k) => `    ${k}: ${next(12) ? `s${next(3)}` : special[next(special.length)]}`).join('\n')}\n`;
      if (foldPinLines(text)) folded++;
      assertReadsAsYaml(text);
    }
    assert.ok(folded > 50, `${folded} of 200 were folded`);
  });

  for (const [name, text] of Object.entries(cases)) {
    it(name, () => {
      const oracle = assertReadsAsYaml(text) as { strategy: { pins: object } } | undefined;
      // own names too (deepEqual does not tell an own __proto__ from a prototype)
      const got = readConfigText(text, 'f') as { data?: { strategy: { pins: object } } };
      if (oracle) assert.deepEqual(Object.getOwnPropertyNames(got.data!.strategy.pins), Object.getOwnPropertyNames(oracle.strategy.pins));
    });
  }
});
