import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { largestFirst, prefixKey } from '../../src/plan/order.js';

// the order plan promises, as one comparator: largest bytes first, ties in code-unit order of the unit
const reference = <T extends { unit: string; bytes: number }>(xs: readonly T[]) =>
  [...xs].sort((a, b) => b.bytes - a.bytes || (a.unit < b.unit ? -1 : a.unit > b.unit ? 1 : 0));

let seed = 20261201;
const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), Math.floor((seed / 2 ** 31) * n));
const ALPHABET = ['', 'a', 'b', '0', '9', '-', '\u007f', '\u0080', 'é', 'ü', '店', '😀', '\ud800'];
const randomText = () => Array.from({ length: rand(11) }, () => ALPHABET[rand(ALPHABET.length)]).join('');

describe('plan assignment order', () => {
  it('prefixKey never orders two strings against their code-unit order', () => {
    const texts = Array.from({ length: 5000 }, randomText);
    for (let i = 0; i < 100_000; i++) {
      const a = texts[rand(texts.length)]!;
      const b = texts[rand(texts.length)]!;
      if (a < b && prefixKey(a) > prefixKey(b)) assert.fail(`${JSON.stringify(a)} < ${JSON.stringify(b)} but its key is larger`);
    }
  });

  it('equals the one-comparator sort: decimal tenants, shared long prefixes, non-ASCII, few and many sizes, the unpacked fallback', () => {
    const cases: { unit: string; bytes: number }[][] = [];
    const distinct = (make: (i: number) => string, n: number) => [...new Set(Array.from({ length: n }, (_, i) => make(i)))];
    const decimal = distinct((i) => String((i * 7919) % 100_003), 30_000);
    cases.push(decimal.map((unit) => ({ unit, bytes: 68 + rand(6) })));
    cases.push(decimal.map((unit) => ({ unit, bytes: rand(1_000_000) })));
    cases.push(distinct((i) => `tenant-${String(i).padStart(8, '0')}`, 5000).map((unit) => ({ unit, bytes: 100 })));
    cases.push(distinct(() => randomText(), 20_000).map((unit) => ({ unit, bytes: rand(3) * 10 })));
    cases.push([]);
    cases.push([{ unit: '', bytes: 0 }]);
    for (const xs of cases) {
      const want = reference(xs).map((x) => x.unit);
      assert.deepEqual(largestFirst(xs).map((x) => x.unit), want);
      assert.deepEqual(largestFirst(xs, 3).map((x) => x.unit), want, 'groups above the pack limit sort by comparator');
    }
  });
});
