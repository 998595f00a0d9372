import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isMap, isSeq, parseDocument, type Document } from 'yaml';
import { allEdits, dropShard, editConfigFile, previewConfigEdit, setMapping } from '../../src/config/edit-file.js';

/**
 * `allEdits` of many `setMapping`s runs in one pass over the mapping. Oracle: the edit as it was
 * before (a scan of the mapping per cell, kept here verbatim), applied to the same text: the file
 * text must be the same, byte for byte, comments, styles, regions and statuses included.
 */
function scanSetMapping(cell: string, shard: string, region?: string, status?: string) {
  return (doc: Document) => {
    if (doc.getIn(['strategy', 'kind']) !== 'h3') throw new Error('not h3');
    const seq = doc.getIn(['strategy', 'mapping'], true);
    if (!isSeq(seq)) doc.setIn(['strategy', 'mapping'], doc.createNode([]));
    const items = (doc.getIn(['strategy', 'mapping'], true) as { items: unknown[] }).items;
    const i = items.findIndex((it) => isMap(it) && String(it.get('cell')).toLowerCase() === cell.toLowerCase());
    if (i >= 0) {
      doc.setIn(['strategy', 'mapping', i, 'shard'], shard);
      if (region !== undefined) doc.setIn(['strategy', 'mapping', i, 'region'], region);
      if (status !== undefined) doc.setIn(['strategy', 'mapping', i, 'capacity_status'], status);
    } else {
      const node = doc.createNode({ cell, shard, ...(region !== undefined ? { region } : {}), ...(status !== undefined ? { capacity_status: status } : {}) });
      node.flow = true;
      doc.addIn(['strategy', 'mapping'], node);
    }
  };
}

const edited = (text: string, edit: (doc: Document) => void) => {
  const doc = parseDocument(text);
  edit(doc);
  return doc.toString({ flowCollectionPadding: true });
};

const head = `# the fleet
source: postgres://app:\${PW}@mono:5432/loc
strategy:
  kind: h3 # cells
  shardResolution: 3
  defaultShard: s0
`;
const tail = `shards:
  - { id: s0, primary: "postgres://app@a/loc" }
  - id: s1
    primary: postgres://app@b/loc # b
  - id: s2
    primary: postgres://app@c/loc
tables:
  - { name: drivers, lat: lat, lng: lng }
`;
const configs: Record<string, string> = {
  'one entry per line, comments': `${head}  mapping:
    # west
    - { cell: 831f8dfffffffff, shard: s1 } # first
    - { cell: 831f8cfffffffff, shard: s2, region: west }
    - { cell: 831f89fffffffff, shard: s2, region: west, capacity_status: full }
    # east
    - { cell: 831F88FFFFFFFFF, shard: s0 }
${tail}`,
  'block entries': `${head}  mapping:
    - cell: 831f8dfffffffff
      shard: s1
      # a note on this one
      region: west
    - cell: "831f8cfffffffff"
      shard: s2
      capacity_status: read-only
    - cell: 831f89fffffffff # a cell
      shard: s2
${tail}`,
  'a flow sequence': `${head}  mapping: [{cell: 831f8dfffffffff, shard: s1}, {cell: 831f8cfffffffff, shard: s2, region: east}]
${tail}`,
  'a duplicated cell (the first one is edited)': `${head}  mapping:
    - { cell: 831f8dfffffffff, shard: s1 }
    - { cell: 831f8dfffffffff, shard: s2 }
${tail}`,
  'no mapping yet': `${head}${tail}`,
  'an empty mapping': `${head}  mapping: []
${tail}`,
};

type Change = [string, string, string?, ('active' | 'full' | 'read-only')?];
const changes: Change[] = [
  ['831f8dfffffffff', 's2'],
  ['831f8cfffffffff', 's0', 'east', 'read-only'],
  ['831F89FFFFFFFFF', 's1', undefined, 'active'], // another case than the file's
  ['831f88fffffffff', 's1', 'north'],
  ['832830fffffffff', 's0'], // new: appended
  ['832830FFFFFFFFF', 's2', 'south', 'full'], // the cell just appended, edited again
  ['832834fffffffff', 's1', undefined, 'read-only'], // new
  ['831f8dfffffffff', 's0', 'west'], // edited a second time
];

describe('many mapping edits in one pass give the same file as one scan per cell', () => {
  for (const [name, text] of Object.entries(configs)) {
    it(name, () => {
      const before = edited(text, (doc) => changes.forEach((c) => scanSetMapping(...c)(doc)));
      const batched = edited(text, allEdits(...changes.map((c) => setMapping(...c))));
      assert.equal(batched, before);
      for (const c of changes) assert.equal(edited(text, setMapping(...c)), edited(text, scanSetMapping(...c)), `${c.join(' ')} alone`);
      // setMappings between other edits: each run of them is applied in its place
      const mixed = edited(text, allEdits(setMapping(...changes[0]!), dropShard('s2'), ...changes.slice(1).map((c) => setMapping(...c))));
      assert.equal(mixed, edited(text, (doc) => {
        scanSetMapping(...changes[0]!)(doc);
        dropShard('s2')(doc);
        changes.slice(1).forEach((c) => scanSetMapping(...c)(doc));
      }));
      assert.notEqual(batched, edited(text, () => {}), 'the edits changed the file');
    });
  }

  it('thousands of changes over a large mapping: same text', () => {
    const lines = Array.from({ length: 3000 }, (_, i) => `    - { cell: ${(0x831f00000000000 + i * 0x1000).toString(16)}fff, shard: s${i % 3} }`);
    const text = `${head}  mapping:\n${lines.join('\n')}\n${tail}`;
    const cells = lines.map((l) => /cell: (\w+)/.exec(l)![1]!);
    const many: Change[] = cells.filter((_, i) => i % 3 === 2).map((c, i) => [c, `s${i % 2}`]);
    many.push(['8328fffffffffff', 's1']);
    assert.equal(edited(text, allEdits(...many.map((c) => setMapping(...c)))), edited(text, (doc) => many.forEach((c) => scanSetMapping(...c)(doc))));
  });

  it('a jump config is refused as before', () => {
    const jump = 'strategy:\n  kind: jump\n  key: tenant_id\n';
    assert.throws(() => edited(jump, allEdits(setMapping('831f8dfffffffff', 's1'), setMapping('831f8cfffffffff', 's1'))), /belongs to the h3 strategy/);
  });
});

describe('an apply after its preview reuses the preview only for the very text previewed', () => {
  const text = configs['one entry per line, comments']!.replace(':${PW}', ''); // valid: a preview validates
  const dir = mkdtempSync(join(tmpdir(), 'shardctl-edits-'));
  const file = join(dir, 'shardctl.yaml');

  it('preview then apply: the same file as the apply alone', () => {
    const edit = allEdits(...changes.map((c) => setMapping(...c)));
    const expected = edited(text, (doc) => changes.forEach((c) => scanSetMapping(...c)(doc)));
    writeFileSync(file, text);
    previewConfigEdit(file, edit);
    assert.equal(readFileSync(file, 'utf8'), text, 'a preview writes nothing');
    editConfigFile(file, edit);
    assert.equal(readFileSync(file, 'utf8'), expected);
  });

  it('a file changed between the preview and the apply is edited as it now is', () => {
    const edit = setMapping('831f8dfffffffff', 's2');
    writeFileSync(file, text);
    previewConfigEdit(file, edit);
    const changed = text.replace('# east', '# east, edited by hand meanwhile');
    writeFileSync(file, changed);
    editConfigFile(file, edit);
    assert.equal(readFileSync(file, 'utf8'), edited(changed, scanSetMapping('831f8dfffffffff', 's2')));
    assert.match(readFileSync(file, 'utf8'), /edited by hand meanwhile/);
  });

  it('another edit after a preview is applied as itself', () => {
    writeFileSync(file, text);
    previewConfigEdit(file, setMapping('831f8dfffffffff', 's2'));
    editConfigFile(file, setMapping('831f8dfffffffff', 's0'));
    assert.equal(readFileSync(file, 'utf8'), edited(text, scanSetMapping('831f8dfffffffff', 's0')));
  });
});
