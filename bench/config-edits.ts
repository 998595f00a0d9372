/**
 * What loading and topology edits of large configs cost (no servers): `node dist/bench/config-edits.js [entries] [pins]`.
 * An h3 config of 50,000 one-per-line mapping entries: loading, a remove-shard-like reassignment of
 * 5,000 cells (preview, then apply), `mapping set` of one cell. A jump config of 50,000 pins (and
 * then 4 times as many): loading, 5,000 pinned tenants moved, `pin` of a new tenant, of a pinned
 * one, `unpin`.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cellToChildren, getRes0Cells } from 'h3-js';
import { Document, isMap, isSeq } from 'yaml';
import { allEdits, editConfigFile, loadConfig, previewConfigEdit, removePin, setMapping, setPin } from '../src/index.js';

const n = Number(process.argv[2] ?? 50_000);
const pinCounts = process.argv[3] ? [Number(process.argv[3])] : [50_000, 200_000];
const res = n > 40_000 ? 4 : 3;
const cells: string[] = [];
for (const r0 of getRes0Cells()) for (const c of cellToChildren(r0, res)) if (cells.length < n) cells.push(c);

function yamlOf(strategy: object, table: object): string {
  const doc = new Document({
    source: 'postgres://app@mono:5432/loc',
    strategy,
    shards: [0, 1, 2, 3].map((i) => ({ id: `s${i}`, primary: `postgres://app@shard${i}:5432/loc` })),
    tables: [table],
  });
  const seq = doc.getIn(['strategy', 'mapping'], true);
  if (isSeq(seq)) for (const item of seq.items) if (isMap(item)) item.flow = true;
  return doc.toString({ flowCollectionPadding: true });
}

const dir = mkdtempSync(join(tmpdir(), 'shardctl-edits-'));
const h3File = join(dir, 'h3.yaml');
const h3Text = yamlOf({ kind: 'h3', shardResolution: res, defaultShard: 's0', mapping: cells.map((cell, i) => ({ cell, shard: `s${i % 4}` })) }, { name: 'drivers', lat: 'lat', lng: 'lng' });
const jumpFile = join(dir, 'jump.yaml');
/** A jump config of `count` pins, one per line as yaml writes them (its own toString of them takes seconds). */
function jumpText(count: number): string {
  const pins = Array.from({ length: count }, (_, i) => `    tenant-${i}: s${i % 4}\n`).join('');
  return yamlOf({ kind: 'jump', key: 'tenant_id', pins: { PINS: 'x' } }, { name: 'drivers', key: 'tenant_id' }).replace('    PINS: x\n', pins);
}

function time(label: string, f: () => void): void {
  const t = performance.now();
  f();
  console.log(`${label.padEnd(58)} ${((performance.now() - t) / 1000).toFixed(2)} s`);
}

console.log(`${n} mapping entries`);
// the leaving shard s3's cells, every fourth, the first 5,000 of them, reassigned round-robin
const leaving = cells.filter((_, i) => i % 4 === 3).slice(0, 5_000);
const drain = allEdits(...leaving.map((c, i) => setMapping(c, `s${i % 3}`)));
writeFileSync(h3File, h3Text);
time(`load (every command)`, () => loadConfig(h3File));
time(`remove-shard-like: preview of ${leaving.length} reassigned cells`, () => previewConfigEdit(h3File, drain));
time(`remove-shard-like: apply of ${leaving.length} reassigned cells`, () => editConfigFile(h3File, drain));
writeFileSync(h3File, h3Text);
const one = setMapping(cells[n - 1]!, 's0');
time('mapping set (last cell): preview', () => previewConfigEdit(h3File, one));
time('mapping set (last cell): apply', () => editConfigFile(h3File, one));
for (const count of pinCounts) {
  console.log(`${count} pins`);
  writeFileSync(jumpFile, jumpText(count));
  time('load (every command)', () => loadConfig(jumpFile));
  // remove-shard-like: the tenants pinned to s3, the first 5,000 of them, pinned round-robin elsewhere
  const moved = Array.from({ length: 5_000 }, (_, i) => setPin(`tenant-${i * 4 + 3}`, `s${i % 3}`));
  for (const [label, edit] of [
    ['remove-shard-like: 5000 pinned tenants moved', allEdits(...moved)],
    ['pin (new tenant)', setPin('tenant-new', 's1')],
    ['pin (a pinned tenant, to another shard)', setPin(`tenant-${count - 2}`, 's3')],
    ['unpin', removePin('tenant-7')],
  ] as const) {
    time(`${label}: preview`, () => previewConfigEdit(jumpFile, edit));
    time(`${label}: apply`, () => editConfigFile(jumpFile, edit));
  }
}
