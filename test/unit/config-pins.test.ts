import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Document, parseDocument } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { readConfigText } from '../../src/config/read-text.js';
import { parseUniqueKeys } from '../../src/config/unique-keys.js';
import { UserError } from '../../src/index.js';

/**
 * A jump config with tens of thousands of `pins` loads in linear time (yaml's own duplicate-key check
 * compares each key with every key before it). Oracle: the object the text was written from, and
 * yaml's own parse with its own check (`uniqueKeys: true`): the same data, the same errors.
 */
export function pinsObject(n: number) {
  return {
    source: 'postgres://app:${PW}@mono:5432/app',
    strategy: { kind: 'jump', key: 'tenant_id', pins: Object.fromEntries(Array.from({ length: n }, (_, i) => [`tenant-${i}`, `s${i % 3}`])) },
    shards: [0, 1, 2].map((i) => ({ id: `s${i}`, primary: `postgres://app:\${PW}@shard${i}:5432/app` })),
    tables: [{ name: 'accounts', key: 'tenant_id' }],
  };
}
const env = { PW: 'hunter2-pw' };

function refusal(text: string, file = 'big.yaml'): string[] {
  try {
    parseConfig(text, file, { env });
  } catch (e) {
    assert.ok(e instanceof UserError, `a UserError, got ${e}`);
    assert.equal(e.exitCode, 2);
    return [e.message, ...e.details];
  }
  assert.fail('loaded without error');
}

describe('a jump config with 100,000 pins loads in linear time', () => {
  // before: minutes (yaml's check is quadratic); now seconds: the timeout only catches the quadratic
  it('every pin as written, block style', { timeout: 60_000 }, () => {
    const obj = pinsObject(100_000);
    const c = parseConfig(new Document(obj).toString(), 'big.yaml', { env });
    assert.equal(c.strategy.kind, 'jump');
    assert.deepEqual(c.strategy.kind === 'jump' ? c.strategy.pins : {}, obj.strategy.pins);
  });

  it('a repeated pin is refused naming it and its line', { timeout: 60_000 }, () => {
    const lines = new Document(pinsObject(100_000)).toString().split('\n');
    const at = lines.indexOf('    tenant-99998: s2');
    lines.splice(at + 1, 0, '    tenant-7: s1');
    assert.deepEqual(refusal(lines.join('\n')), [`big.yaml: strategy.pins.tenant-7: key appears twice (line ${at + 2}, column 5)`]);
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
