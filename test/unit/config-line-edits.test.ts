import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { cellToChildren, getRes0Cells } from 'h3-js';
import { parse, parseDocument, type Document as Doc } from 'yaml';
import { allEdits, appendShard, dropShard, editConfigFile, previewConfigEdit, promoteReplica, removePin, setMapping, setPin, type ConfigEdit } from '../../src/config/edit-file.js';
import { editFolded } from '../../src/config/fold-edits.js';
import { editLines } from '../../src/config/line-edits.js';
import { parseConfig } from '../../src/config/load.js';
import { pinsObject, pinsYaml } from '../helpers/pins.js';

/**
 * Pin, unpin and mapping edits change the file's lines, not the whole document. Oracle: the Document
 * edit as it was (yaml's parse, the edit, yaml's serialisation): the same file text byte for byte
 * where the file is as yaml writes it, else the same parsed value with only the entry's line changed.
 */
const docPath = (text: string, edit: (doc: Doc) => void) => {
  const doc = parseDocument(text);
  edit(doc);
  return doc.toString({ flowCollectionPadding: true });
};
const byLines = (text: string, edit: ConfigEdit) => (edit.lines ? editLines(text, edit.lines)?.text : undefined);

/** The lines of b that are not a's, and of a that are not b's (as multisets: a moved line counts). */
function changedLines(a: string, b: string): { removed: string[]; added: string[] } {
  const count = new Map<string, number>();
  for (const l of a.split('\n')) count.set(l, (count.get(l) ?? 0) + 1);
  const added: string[] = [];
  for (const l of b.split('\n')) {
    const n = count.get(l) ?? 0;
    if (n > 0) count.set(l, n - 1);
    else added.push(l);
  }
  return { removed: [...count].flatMap(([l, n]) => Array<string>(n).fill(l)), added };
}

function random(seed: number) {
  return () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
}

const h3Tail = 'shards:\n  - id: s0\n    primary: postgres://a@b/c\n  - id: s1\n    primary: postgres://a@b/c\n  - id: s2\n    primary: postgres://a@b/c\ntables:\n  - name: t\n    lat: lat\n    lng: lng\n';
const tail = 'shards:\n  - id: s0\n    primary: postgres://a@b/c\n  - id: s1\n    primary: postgres://a@b/c\n  - id: s2\n    primary: postgres://a@b/c\ntables:\n  - name: t\n    key: tenant_id\n';
const jumpHead = '# the fleet\nsource: postgres://a@b/c # monolith\nstrategy:\n  kind: jump\n  key: tenant_id\n';
const pinLines = Array.from({ length: 40 }, (_, i) => `    tenant-${i}: s${i % 3}`);
const h3Head = 'source: postgres://a@b/c\nstrategy:\n  kind: h3\n  shardResolution: 3\n  defaultShard: s0\n';
const cellsOf = getRes0Cells().flatMap((r0) => cellToChildren(r0, 3)).slice(0, 42);
const [newCell, otherCell] = cellsOf.splice(40, 2) as [string, string];
const entryLines = cellsOf.map((c, i) => `    - { cell: ${c}, shard: s${i % 3}${i % 5 ? '' : ', region: west'}${i % 7 ? '' : ', capacity_status: full'} }`);

describe('pin edits on the lines give the file the Document edit gives', () => {
  const canonical = `${jumpHead}  pins:\n${pinLines.join('\n')}\n${tail}`;
  it('the file as yaml writes it stays so', () => assert.equal(docPath(canonical, () => {}), canonical));

  it('a random walk of 300 pin, re-pin and unpin edits, one at a time and all at once: byte for byte', () => {
    const next = random(7);
    const edits: ConfigEdit[] = [];
    for (let k = 0; k < 300; k++) {
      const tenant = `tenant-${Math.floor(next() * 60)}`;
      edits.push(next() < 0.3 ? removePin(tenant) : setPin(tenant, `s${Math.floor(next() * 3)}`));
    }
    let text = canonical;
    let taken = 0;
    for (const e of edits) {
      let want: string;
      try {
        want = docPath(text, e);
      } catch {
        continue; // unpin of a tenant not pinned: the Document edit refuses it, and the lines do not edit it
      }
      const got = byLines(text, e);
      if (got !== undefined) taken++;
      assert.equal(got ?? want, want);
      text = want;
    }
    assert.ok(taken > 200, `the lines edited ${taken} of them`);
    const valid = edits.filter((e, i) => i % 2 === 0 && e.lines![0]! && 'pin' in e.lines![0]!);
    assert.equal(byLines(canonical, allEdits(...valid)), docPath(canonical, allEdits(...valid)));
  });

  it('edits in a hand-written file: the same value, only the pin lines changed, comments kept', () => {
    const hand = `${jumpHead}  pins:   # by tenant\n${pinLines.slice(0, 20).join('\n')}\n\n    # the big ones\n${pinLines.slice(20).map((l) => l.replace(': ', ':    ')).join('\n')}   # last\n    # after\n${tail}`;
    const cases: [ConfigEdit, number, number][] = [
      [setPin('tenant-3', 's2'), 1, 1],
      [setPin('tenant-39', 's0'), 1, 1],
      [setPin('tenant-new', 's1'), 0, 1],
      [removePin('tenant-25'), 1, 0],
      [allEdits(removePin('tenant-0'), setPin('tenant-0', 's1')), 1, 1],
    ];
    for (const [e, removed, added] of cases) {
      const got = byLines(hand, e);
      assert.ok(got !== undefined, 'edited on the lines');
      assert.deepEqual(parse(got), parse(docPath(hand, e)));
      const diff = changedLines(hand, got);
      assert.deepEqual([diff.removed.length, diff.added.length], [removed, added], JSON.stringify(diff));
    }
    assert.match(byLines(hand, setPin('tenant-39', 's0'))!, /\n {4}tenant-39: s0 # last\n {4}# after\n/);
  });

  it('CRLF line ends are kept', () => {
    const crlf = canonical.replace(/\n/g, '\r\n');
    for (const e of [setPin('tenant-1', 's0'), setPin('tenant-x', 's1'), removePin('tenant-2')]) {
      const got = byLines(crlf, e)!;
      assert.ok(got !== undefined && !/[^\r]\n/.test(got), 'every line ends in CRLF');
      assert.deepEqual(parse(got), parse(docPath(crlf, e)));
    }
  });

  it('shapes the lines do not edit go the Document way, to the same file as before', () => {
    const shapes: [string, ConfigEdit][] = [
      [`${jumpHead}  pins: { a: s1, b: s2 }\n${tail}`, setPin('a', 's0')],
      [`${jumpHead}  pins:\n    "a": s1\n    b: s2\n${tail}`, setPin('a', 's0')],
      [`${jumpHead}  pins:\n    a: "s1"\n    b: s2\n${tail}`, setPin('a', 's0')],
      [`${jumpHead}  pins:\n    a: s1\n${tail}`, removePin('a')], // yaml writes the emptied map as {}
      [`${jumpHead}  pins:\n    7: s1\n    b: s2\n${tail}`, setPin('7', 's0')],
      [`${jumpHead}  pins:\n    a: s1\n${tail}`, setPin('007', 's0')],
      [`${jumpHead}  pins:\n    a: s1\n${tail}`, setPin('a b', 's0')],
      [`${jumpHead}${tail}`, setPin('a', 's0')],
      [`${jumpHead}  pins:\n    a: s1\n${tail}`, allEdits(setPin('b', 's0'), dropShard('s2'))],
    ];
    for (const [text, e] of shapes) {
      assert.equal(byLines(text, e), undefined, text);
      assert.equal(editedFile(text, e), docPath(text, e));
    }
    const inText = `${jumpHead}  pins:\n    a: s1\n  note: |\n    pins:\n${tail}`; // two \`pins:\` lines: which one is a guess
    assert.equal(byLines(inText, setPin('b', 's0')), undefined);
    assert.throws(() => editedFile(`${h3Head}  mapping: []\n${h3Tail}`, setPin('a', 's0')), /pins belong to the jump strategy/);
    assert.throws(() => editedFile(`${jumpHead}  pins:\n${pinLines.join('\n')}\n${tail}`, removePin('nobody')), /tenant nobody is not pinned/);
  });
});

describe('mapping edits on the lines give the file the Document edit gives', () => {
  const canonical = `${h3Head}  mapping:\n${entryLines.join('\n')}\n${h3Tail}`;
  it('the file as yaml writes it stays so', () => assert.equal(docPath(canonical, () => {}), canonical));

  it('changes, new cells, regions and statuses, one at a time and all at once: byte for byte', () => {
    const changes: Parameters<typeof setMapping>[] = [
      [cellsOf[0]!, 's1'],
      [cellsOf[1]!.toUpperCase(), 's2', 'east'],
      [cellsOf[7]!, 's0', 'north'], // has a status, no region: region goes last
      [cellsOf[14]!, 's0', undefined, 'read-only'],
      [newCell, 's1'],
      [newCell.toUpperCase(), 's2', 'south', 'active'],
      [otherCell, 's0', undefined, 'full'],
      [cellsOf[39]!, 's0'],
      [cellsOf[0]!, 's2', 'west'],
    ];
    for (const c of changes) {
      const got = byLines(canonical, setMapping(...c));
      assert.ok(got !== undefined, c.join(' '));
      assert.equal(got, docPath(canonical, setMapping(...c)), c.join(' '));
    }
    const all = allEdits(...changes.map((c) => setMapping(...c)));
    assert.equal(byLines(canonical, all), docPath(canonical, all));
  });

  it('a line yaml would break goes the Document way, to the same file', () => {
    const e = setMapping(cellsOf[7]!, 's1', 'a-region-name-long-enough-to-pass-eighty');
    assert.equal(byLines(canonical, e), undefined);
    assert.equal(editedFile(canonical, e), docPath(canonical, e));
  });

  it('block entries, a flow sequence, quoted cells: the Document way', () => {
    const shapes = [
      `${h3Head}  mapping:\n    - cell: ${cellsOf[0]}\n      shard: s1\n${h3Tail}`,
      `${h3Head}  mapping: [{ cell: ${cellsOf[0]}, shard: s1 }]\n${h3Tail}`,
      `${h3Head}  mapping:\n    - { cell: "${cellsOf[0]}", shard: s1 }\n${entryLines.slice(1).join('\n')}\n${h3Tail}`,
    ];
    for (const text of shapes) {
      const e = setMapping(cellsOf[0]!, 's2');
      assert.equal(byLines(text, e), undefined, text);
      assert.equal(editedFile(text, e), docPath(text, e));
    }
  });
});

const dir = mkdtempSync(join(tmpdir(), 'shardctl-lines-'));
function editedFile(text: string, e: ConfigEdit): string {
  const file = join(dir, 'shardctl.yaml');
  writeFileSync(file, text);
  editConfigFile(file, e);
  return readFileSync(file, 'utf8');
}

describe('a 50,000-pin file: preview and apply edit one line', () => {
  const env = { PW: 'pw' };
  it('pin, re-pin and unpin: the file is the old one with that line changed, the config the oracle`s', () => {
    const file = join(dir, 'big.yaml');
    const text = pinsYaml(50_000).replace(/\$\{PW\}/g, 'pw');
    writeFileSync(file, text);
    const pins = { ...pinsObject(50_000).strategy.pins };
    const line = (t: string) => `    ${t}: ${pins[t]}\n`;
    const steps: [ConfigEdit, (t: string) => string, () => void][] = [
      [setPin('tenant-new', 's1'), (t) => t.replace(line('tenant-49999'), `${line('tenant-49999')}    tenant-new: s1\n`), () => (pins['tenant-new'] = 's1')],
      [setPin('tenant-124', 's0'), (t) => t.replace(line('tenant-124'), '    tenant-124: s0\n'), () => (pins['tenant-124'] = 's0')],
      [removePin('tenant-77'), (t) => t.replace(line('tenant-77'), ''), () => delete pins['tenant-77']],
    ];
    let want = text;
    for (const [e, change, apply] of steps) {
      want = change(want);
      apply();
      const before = readFileSync(file, 'utf8');
      const preview = previewConfigEdit(file, e);
      assert.equal(readFileSync(file, 'utf8'), before, 'a preview writes nothing');
      const applied = editConfigFile(file, e);
      assert.equal(readFileSync(file, 'utf8'), want);
      for (const c of [preview, applied, parseConfig(want, file, { env })]) assert.deepEqual(c.strategy.kind === 'jump' ? c.strategy.pins : {}, pins);
    }
  });
});

describe('other edits of a large file: its short rest edited, its entry lines put back', () => {
  const shards = 'shards:\n  - id: s0\n    primary: postgres://a@b/c\n  - id: s1\n    primary: postgres://a@b/c\n    replicas:\n      - postgres://r@b/c\n  - id: s2\n    primary: postgres://a@b/c\n';
  const jump = `${jumpHead}  pins:\n${pinLines.slice(0, 20).join('\n')}\n    "quoted": s1\n${pinLines.slice(20).join('\n')}\n${shards}tables:\n  - name: t\n    key: tenant_id\n`;
  const h3 = `${h3Head}  mapping:\n${entryLines.join('\n')}\n${shards}tables:\n  - name: t\n    lat: lat\n    lng: lng\n`;
  const folded: [string, ConfigEdit][] = [
    ['jump', appendShard({ id: 's3', primary: 'postgres://x@y/z', replicas: [] })],
    ['jump', promoteReplica('s1', 0)],
    ['jump', allEdits(dropShard('s2'), removePin('quoted'))],
    ['h3', appendShard({ id: 's3', primary: 'postgres://x@y/z', replicas: ['postgres://x@w/z'] })],
    ['h3', dropShard('s2')],
  ];
  for (const [kind, e] of folded) {
    const text = kind === 'jump' ? jump : h3;
    it(`${kind}: ${e.toString().slice(0, 40)}…: byte for byte`, () => {
      assert.equal(docPath(text, () => {}), text, 'the file as yaml writes it');
      const got = editFolded(text, e);
      assert.ok(got !== undefined, 'edited folded');
      assert.equal(got.text, docPath(text, e));
    });
  }
  it('an edit that needs a folded entry is not made folded (the whole Document makes it)', () => {
    const added = allEdits(setPin('tenant-new', 's0'), dropShard('s2'));
    assert.equal(editFolded(jump, added)?.text, docPath(jump, added), 'a new tenant is not folded: edited folded');
    assert.equal(editFolded(jump, allEdits(dropShard('s2'), removePin('tenant-5'))), undefined);
    assert.equal(editFolded(jump, allEdits(setPin('tenant-3', 's0'), dropShard('s2'))), undefined);
    assert.throws(() => editedFile(jump, dropShard('s9')), /shard s9 is not in the config/);
  });
  it('hand-written entry lines are put back as they were', () => {
    const hand = jump.replace('    tenant-3: s0', '    tenant-3:   s0   # odd').replace(/\n/g, '\r\n');
    const got = editFolded(hand, dropShard('s2'))!;
    assert.ok(got !== undefined);
    assert.match(got.text, /\n {4}tenant-3: {3}s0 {3}# odd\n/);
    assert.deepEqual(parse(got.text), parse(docPath(hand, dropShard('s2'))));
  });
});

describe("remove-shard's last edit: the unpins on the lines, the dropped shard on the folded rest", () => {
  const shards = 'shards:\n  - id: s0\n    primary: postgres://a@b/c\n  - id: s1\n    primary: postgres://a@b/c\n  - id: s2\n    primary: postgres://a@b/c\n';
  const pins = Array.from({ length: 40 }, (_, i) => `    tenant-${i}: s${i % 2}`);
  const jump = `${jumpHead}  pins:\n${pins.join('\n')}\n${shards}tables:\n  - name: t\n    key: tenant_id\n`;
  it('the same file as the Document edit, each step made the fast way', () => {
    const last = allEdits(dropShard('s2'), removePin('tenant-5'), removePin('tenant-8'));
    const unpinned = editLines(jump, [{ unpin: 'tenant-5' }, { unpin: 'tenant-8' }]);
    assert.ok(unpinned !== undefined && editFolded(unpinned.text, dropShard('s2')) !== undefined, 'both steps the fast way');
    assert.equal(editedFile(jump, last), docPath(jump, last));
    const added = allEdits(appendShard({ id: 's3', primary: 'postgres://x@y/z', replicas: [] }), setPin('tenant-3', 's2'), removePin('tenant-9'));
    assert.equal(editedFile(jump, added), docPath(jump, added));
  });
});
