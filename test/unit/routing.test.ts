import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { cellToParent, latLngToCell, getResolution, cellToChildren, isPentagon } from 'h3-js';
import { createRouter, descendantRange, jumpHash, shardCell, tenantKey64 } from '../../src/index.js';
import { parseConfig } from '../../src/config/load.js';
import { JUMP_POINTS, JUMP_TABLE } from '../helpers/golden.js';
import { jumpHashReference } from '../helpers/jump-reference.js';
import { jumpHash32 } from '../../src/routing/jump.js';
import { md5Head } from '../../src/routing/md5.js';

describe('jumpHash', () => {
  it('matches the reference C++ implementation (table published with dgryski/go-jump)', () => {
    for (const [key, buckets] of JUMP_TABLE) {
      buckets.forEach((want, i) => assert.equal(jumpHash(key, i + 1), want, `jumpHash(${key}, ${i + 1})`));
    }
  });

  it('matches ClickHouse jumpConsistentHash values, including a key above 2^63', () => {
    for (const [key, buckets, want] of JUMP_POINTS) assert.equal(jumpHash(key, buckets), want, `jumpHash(${key}, ${buckets})`);
    assert.ok(JUMP_POINTS.some(([k]) => k >= 2n ** 63n));
  });

  it('keeps every bit of keys above 2^53 (a Number would collapse these)', () => {
    const a = 2n ** 60n + 1n;
    const b = 2n ** 60n + 2n; // the same double as `a`
    assert.equal(Number(a), Number(b));
    const differ = [...Array(200).keys()].some((n) => jumpHash(a + BigInt(n) * 2n, 1000) !== jumpHash(b + BigInt(n) * 2n, 1000));
    assert.ok(differ, 'neighbouring 64-bit keys must not all hash alike');
    assert.equal(jumpHash(2n ** 64n - 1n, 10), jumpHash(18446744073709551615n, 10));
    assert.throws(() => jumpHash(2n ** 64n, 10), RangeError);
    assert.throws(() => jumpHash(-1n, 10), RangeError);
    assert.throws(() => jumpHash(1n, 0), RangeError);
  });

  it('in 32-bit halves equals the BigInt reference: golden keys, edge keys, random keys, every bucket count 1..1000', () => {
    const mask = (1n << 64n) - 1n;
    // xorshift64: deterministic random 64-bit keys
    let x = 0x9e3779b97f4a7c15n;
    const next = () => ((x ^= (x << 13n) & mask), (x ^= x >> 7n), (x ^= (x << 17n) & mask), x);
    // the key whose first step carries from the low word into the high one (lo·M + 1 ≡ 0 mod 2^32)
    const m = 0x87b0b0fdn;
    let inv = 1n;
    for (let i = 0; i < 5; i++) inv = (inv * (2n - m * inv)) & 0xffffffffn; // Newton: m·inv ≡ 1 mod 2^32
    const carryLo = (0x100000000n - inv) & 0xffffffffn;
    assert.equal((carryLo * m + 1n) & 0xffffffffn, 0n);
    const keys = [
      ...JUMP_TABLE.map(([k]) => k),
      ...JUMP_POINTS.map(([k]) => k),
      0n, 1n, 0xffffffffn, 1n << 32n, (1n << 33n) - 1n, 1n << 63n, mask, mask - 1n, carryLo, (0xabcdefn << 32n) | carryLo, (mask << 32n & mask) | carryLo,
      ...Array.from({ length: 250 }, next),
    ];
    let checked = 0;
    for (const key of keys) {
      const hi = Number(key >> 32n);
      const lo = Number(key & 0xffffffffn);
      for (let buckets = 1; buckets <= 1000; buckets++) {
        const want = jumpHashReference(key, buckets);
        if (jumpHash32(hi, lo, buckets) !== want || jumpHash(key, buckets) !== want) {
          assert.fail(`key ${key}, ${buckets} buckets: ${jumpHash32(hi, lo, buckets)} / ${jumpHash(key, buckets)}, reference ${want}`);
        }
        checked++;
      }
    }
    // large bucket counts: many more steps per key, the high word's every bit in play
    for (const key of keys.slice(0, 40)) {
      for (const buckets of [65_536, 1_000_003, 2 ** 31 - 1]) assert.equal(jumpHash(key, buckets), jumpHashReference(key, buckets), `key ${key}, ${buckets} buckets`);
    }
    assert.ok(checked > 250_000);
  });

  const N = 1_000_000;
  const keys = Array.from({ length: N }, (_, i) => tenantKey64(i));

  it('spreads 1M tenants evenly over 4..64 buckets', () => {
    for (const buckets of [4, 5, 8, 16, 32, 64]) {
      const counts = new Array<number>(buckets).fill(0);
      for (const k of keys) counts[jumpHash(k, buckets)]!++;
      const mean = N / buckets;
      const chi2 = counts.reduce((s, c) => s + (c - mean) ** 2 / mean, 0);
      // Chi-square with buckets-1 degrees of freedom: mean df, sd sqrt(2 df); 5 sd is far beyond chance.
      const df = buckets - 1;
      assert.ok(chi2 < df + 5 * Math.sqrt(2 * df), `chi2 ${chi2.toFixed(1)} over ${buckets} buckets`);
      // Within 1% of the mean, or within 4 standard deviations of a perfect uniform draw where 1% is
      // narrower than sampling noise itself (from 16 buckets on, sd/mean = sqrt(buckets/N) > 0.25%).
      const bound = Math.max(0.01, 4 * Math.sqrt(buckets / N));
      for (const c of counts) assert.ok(Math.abs(c - mean) / mean <= bound, `${c} vs mean ${mean} over ${buckets} buckets`);
    }
  });

  it('moves only keys that land on the new bucket, about 1/(n+1) of them', () => {
    for (const n of [4, 9, 31]) {
      let moved = 0;
      for (const k of keys) {
        const before = jumpHash(k, n);
        const after = jumpHash(k, n + 1);
        if (before !== after) {
          assert.equal(after, n, 'a moved key goes to the new bucket only');
          moved++;
        }
      }
      const share = moved / N;
      assert.ok(Math.abs(share - 1 / (n + 1)) < 0.005, `moved ${share} going ${n} -> ${n + 1}`);
    }
  });
});

describe('tenantKey64', () => {
  it('is md5 of the UTF-8 text, first 8 bytes big-endian', () => {
    for (const id of ['42', 'restaurant-ü', '']) {
      const d = createHash('md5').update(Buffer.from(id, 'utf8')).digest();
      assert.equal(tenantKey64(id), BigInt(`0x${d.subarray(0, 8).toString('hex')}`));
    }
    assert.equal(tenantKey64(42), tenantKey64('42'));
    assert.equal(tenantKey64(9007199254740993n), tenantKey64('9007199254740993'));
    assert.throws(() => tenantKey64(2 ** 60), RangeError, 'unsafe numbers are refused, not rounded');
  });

  it('hashes short ASCII keys in JavaScript exactly as node:crypto md5 does (and the rest through it)', () => {
    const texts: string[] = [];
    for (let i = 0; i < 5_000; i++) texts.push(String(i), String(2 ** 53 - 1 - i * 7919));
    let seed = 12345;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), Math.floor((seed / 2 ** 31) * n));
    // every length around the one-block edge (55 bytes fit, 56 do not) and beyond, all of ASCII
    for (let len = 0; len <= 130; len++) {
      for (let k = 0; k < 20; k++) texts.push(Array.from({ length: len }, () => String.fromCharCode(rand(128))).join(''));
    }
    // non-ASCII: 2-, 3- and 4-byte UTF-8, and a lone surrogate (UTF-8 encodes it as U+FFFD)
    texts.push('é', 'restaurant-ü', '店舗-42', '😀', `${'a'.repeat(54)}é`, 'x\ud800y', '\u007f', '\u0080');
    const out = new Uint32Array(2);
    for (const t of texts) {
      const d = createHash('md5').update(t, 'utf8').digest();
      md5Head(t, out);
      if (out[0] !== d.readUInt32BE(0) || out[1] !== d.readUInt32BE(4) || tenantKey64(t) !== d.readBigUInt64BE(0)) {
        assert.fail(`md5 of ${JSON.stringify(t)}: ${out[0]!.toString(16)} ${out[1]!.toString(16)}, node:crypto ${d.subarray(0, 8).toString('hex')}`);
      }
    }
  });
});

describe('shardCell (H3)', () => {
  it('uses the parent of the resolution-12 cell, not latLngToCell(p, 3)', () => {
    let differing = 0;
    let checked = 0;
    // A deterministic grid over Korea and Japan; about 6% of points differ between the two rules.
    for (let lat = 33; lat < 38; lat += 0.05) {
      for (let lng = 126; lng < 131; lng += 0.05) {
        const viaParent = cellToParent(latLngToCell(lat, lng, 12), 3);
        const direct = latLngToCell(lat, lng, 3);
        assert.equal(shardCell(lat, lng), viaParent);
        if (direct !== viaParent) differing++;
        checked++;
      }
    }
    assert.ok(differing > checked * 0.01, `only ${differing} of ${checked} points differ`);
  });

  it('takes configurable resolutions', () => {
    const p = [35.1796, 129.0756] as const;
    assert.equal(shardCell(...p, { indexResolution: 9, shardResolution: 5 }), cellToParent(latLngToCell(...p, 9), 5));
    assert.equal(getResolution(shardCell(...p)), 3);
    assert.throws(() => shardCell(91, 0), RangeError);
  });

  it('equals cellToParent at every resolution pair, pentagons and both hemispheres included', () => {
    // shardCell takes the parent on the hex string where it can (res 3, 7, 11): prove it is cellToParent
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const points: [number, number][] = [[64.7, 10.5] /* near pentagon 820807f */, [-89.99, 0], [89.99, 179.99], [0, -180]];
    for (let i = 0; i < 3000; i++) points.push([rand() * 180 - 90, rand() * 360 - 180]);
    for (const [lat, lng] of points) {
      for (const [indexResolution, shardResolution] of [[12, 3], [15, 7], [11, 11], [13, 11], [9, 5], [3, 3], [2, 3]] as const) {
        const want = indexResolution < shardResolution ? undefined : cellToParent(latLngToCell(lat, lng, indexResolution), shardResolution);
        if (want === undefined) assert.throws(() => shardCell(lat, lng, { indexResolution, shardResolution }));
        else assert.equal(shardCell(lat, lng, { indexResolution, shardResolution }), want, `${lat},${lng} ${indexResolution}→${shardResolution}`);
      }
    }
  });

  it('descendant ranges contain exactly the children of a cell', () => {
    for (const cell of [shardCell(37.5, 127), '830800fffffffff' /* a pentagon */]) {
      const { lo, hi } = descendantRange(cell, 5);
      const children = cellToChildren(cell, 5).map((c) => BigInt(`0x${c}`));
      assert.ok(children.every((c) => c >= lo && c <= hi));
      assert.equal(children.length, isPentagon(cell) ? 41 : 49); // a pentagon has 6 children, 5 of them hexagons
      // neighbours' children fall outside
      const other = BigInt(`0x${cellToChildren(shardCell(-33.9, 151.2), 5)[0]}`);
      assert.ok(other < lo || other > hi);
    }
  });
});

describe('createRouter', () => {
  const jumpConfig = parseConfig(`
source: postgres://app@mono/pos
strategy: { kind: jump, key: restaurant_id, pins: { "8": s2 } }
shards: [ { id: s0, primary: "postgres://a@h0/db" }, { id: s1, primary: "postgres://a@h1/db" }, { id: s2, primary: "postgres://a@h2/db" } ]
tables: [ { name: orders } ]
`);

  it('routes tenants by the hash over shards in config order, pins first', () => {
    const r = createRouter(jumpConfig);
    for (const id of [1, 2, 3, 100, 12345]) assert.equal(r.shardFor(id), ['s0', 's1', 's2'][jumpHash(tenantKey64(id), 3)]);
    assert.equal(r.shardFor(8), 's2');
    assert.equal(r.shardFor('8'), 's2');
    assert.equal(jumpHash(tenantKey64(8), 3), 0, 'without its pin tenant 8 would hash to s0');
    assert.throws(() => r.shardForLocation(1, 1), /h3 strategy/);
    const { shardForUnit } = r; // a unit is a tenant key as the catalog stores it (text)
    for (const id of ['1', '2', '8', '12345']) assert.equal(shardForUnit(id), r.shardFor(id));
  });

  it('routes locations and cells through the mapping, unmapped cells to the default shard', () => {
    const seoul = shardCell(37.5665, 126.978);
    const c = parseConfig(`
source: postgres://app@mono/geo
strategy: { kind: h3, defaultShard: us, mapping: [ { cell: "${seoul}", shard: kr, region: Seoul } ] }
shards: [ { id: us, primary: "postgres://a@h0/db" }, { id: kr, primary: "postgres://a@h1/db" } ]
tables: [ { name: locations, lat: latitude, lng: longitude } ]
`);
    const r = createRouter(c);
    assert.equal(r.shardForLocation(37.5665, 126.978), 'kr');
    assert.equal(r.shardForLocation(37.7749, -122.4194), 'us');
    assert.equal(r.shardForCell(latLngToCell(37.5665, 126.978, 12)), 'kr');
    assert.equal(r.shardForCell(seoul.toUpperCase()), 'kr');
    assert.throws(() => r.shardFor(1), /jump strategy/);
    const { shardForUnit } = r; // a unit is a shard-resolution cell
    assert.equal(shardForUnit(seoul), 'kr');
    assert.equal(shardForUnit(shardCell(37.7749, -122.4194)), 'us');
  });
});
