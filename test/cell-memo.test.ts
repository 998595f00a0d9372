import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cellToBoundary, cellToParent, getRes0Cells, cellToChildren, latLngToCell } from 'h3-js';
import { CellMemo } from '../src/cells/cell-memo.js';

/**
 * The memo of lat/lng cells (issue 26) answers exactly what H3 answers for the point, whatever it
 * has remembered: the oracle here is h3-js itself (the parent at 3 of the resolution-12 cell), on
 * points where a cell is easiest to get wrong (cell vertices, the poles, the antimeridian, -0) and
 * with the memo full, emptied and asked the same text again.
 */
const oracle = (lat: number, lng: number) => cellToParent(latLngToCell(lat, lng, 12), 3);

/** The memo's cell of two COPY text fields, as cellLines asks it (the point as "lat<tab>lng"). */
const cellOf = (memo: CellMemo, lat: string, lng: string) => memo.cellOfPoint(`${lat}\t${lng}`, () => new Error('no NULL here'));

/** Points as COPY prints float8 (the shortest text that reads back to the double). */
function hardPoints(): [string, string][] {
  const pts: [number, number][] = [
    [90, 0], [-90, 0], [90, 180], [-90, -180], [89.99999999999999, 45], [-89.99999999999999, -45],
    [0, 180], [0, -180], [12.5, 180], [12.5, -180], [-33.3, 179.99999999999997], [-33.3, -179.99999999999997],
    [0, 0], [-0, -0], [0, -0], [37.5665, 126.978],
  ];
  // every vertex of the resolution-3 cells around a few base cells: points on the edges of many shard cells
  for (const base of getRes0Cells().slice(0, 6)) for (const c of cellToChildren(base, 3).slice(0, 40)) for (const [lat, lng] of cellToBoundary(c)) pts.push([lat, lng]);
  return pts.map(([lat, lng]) => [String(lat), String(lng)]);
}

describe('CellMemo', () => {
  it('gives the cell H3 gives, on vertices, poles, the antimeridian and -0, asked once and again', () => {
    const memo = new CellMemo({});
    const pts = hardPoints();
    assert.ok(pts.length > 1000, `${pts.length} points`);
    for (let round = 0; round < 2; round++) for (const [lat, lng] of pts) assert.equal(cellOf(memo, lat, lng), oracle(Number(lat), Number(lng)), `${lat}, ${lng} (round ${round})`);
  });

  it('stays exact when it is emptied (a small memo) and when texts of one double differ', () => {
    const memo = new CellMemo({}, 7);
    const pts = hardPoints();
    for (let i = 0; i < pts.length; i++) {
      const [lat, lng] = pts[(i * 37) % pts.length]!;
      assert.equal(cellOf(memo, lat, lng), oracle(Number(lat), Number(lng)), `${lat}, ${lng}`);
    }
    assert.equal(cellOf(memo, '1', '2'), oracle(1, 2));
    assert.equal(cellOf(memo, '1.0', '2.00'), oracle(1, 2));
    assert.equal(cellOf(memo, '1e0', '0.2e1'), oracle(1, 2));
  });

  it('honours other resolutions', () => {
    const memo = new CellMemo({ indexResolution: 9, shardResolution: 2 });
    for (const [lat, lng] of hardPoints().slice(0, 200)) assert.equal(cellOf(memo, lat, lng), cellToParent(latLngToCell(Number(lat), Number(lng), 9), 2));
  });

  it('refuses what shardCell refuses, and remembers nothing of it', () => {
    const memo = new CellMemo({});
    for (const [lat, lng] of [['NaN', '0'], ['0', 'Infinity'], ['90.5', '0'], ['0', '-180.1'], ['abc', '1']] as const) {
      assert.throws(() => cellOf(memo, lat, lng), RangeError, `${lat}, ${lng}`);
      assert.throws(() => cellOf(memo, lat, lng), RangeError, `${lat}, ${lng} again`);
    }
  });

  it('a NULL coordinate throws the caller\'s error, every time', () => {
    const memo = new CellMemo({}, 97);
    for (const point of ['\\N\t1', '1\t\\N', '\\N\t\\N']) {
      for (let i = 0; i < 2; i++) assert.throws(() => memo.cellOfPoint(point, () => new Error('a NULL point')), /a NULL point/, point);
    }
    assert.throws(() => memo.cellOfPoint('91\t0', () => new Error('a NULL point')), RangeError);
  });
});
