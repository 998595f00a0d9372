import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TextPgoutput, toEvent, type StreamEvent } from '../../src/stream/decoder.js';

/**
 * pgoutput messages (protocol version 1) built byte by byte from PostgreSQL's "Logical Replication
 * Message Formats", decoded as the follower decodes them: the expected events are the values written
 * into the bytes, not anything the decoder computes.
 */
const u8 = (n: number) => Buffer.from([n]);
const i16 = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b;
};
const i32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};
const i64 = (n: bigint) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(n);
  return b;
};
const str = (s: string) => Buffer.concat([Buffer.from(s, 'utf8'), u8(0)]);
const tag = (c: string) => Buffer.from(c, 'ascii');
/** 'X/Y' → the 64-bit position, by the test's own arithmetic */
const lsnOf = (text: string) => {
  const [hi, lo] = text.split('/');
  return BigInt(`0x${hi}`) * 2n ** 32n + BigInt(`0x${lo}`);
};
/** microseconds since 2000-01-01 (PostgreSQL's epoch) of a UTC time given in ms since 1970, plus extra µs */
const pgTime = (unixMs: number, micros = 0) => BigInt(unixMs - Date.UTC(2000, 0, 1)) * 1000n + BigInt(micros);

/** A TupleData column: a text value, null ('n') or an unchanged TOASTed value ('u'). */
type Cell = string | null | 'UNCHANGED';
const UNCHANGED = 'UNCHANGED' as const;
const tuple = (cells: readonly Cell[]) =>
  Buffer.concat([
    i16(cells.length),
    ...cells.map((c) => {
      if (c === null) return tag('n');
      if (c === UNCHANGED) return tag('u');
      const v = Buffer.from(c, 'utf8');
      return Buffer.concat([tag('t'), i32(v.length), v]); // the length counts bytes, not characters
    }),
  ]);

const msg = {
  begin: (finalLsn: string, time: bigint, xid: number) => Buffer.concat([tag('B'), i64(lsnOf(finalLsn)), i64(time), i32(xid)]),
  commit: (commitLsn: string, endLsn: string, time: bigint) => Buffer.concat([tag('C'), u8(0), i64(lsnOf(commitLsn)), i64(lsnOf(endLsn)), i64(time)]),
  relation: (oid: number, schema: string, name: string, ident: string, columns: readonly { name: string; type: number; key?: boolean }[]) =>
    Buffer.concat([
      tag('R'),
      i32(oid),
      str(schema),
      str(name),
      tag(ident),
      i16(columns.length),
      ...columns.map((c) => Buffer.concat([u8(c.key ? 1 : 0), str(c.name), i32(c.type), i32(-1)])),
    ]),
  insert: (oid: number, row: readonly Cell[]) => Buffer.concat([tag('I'), i32(oid), tag('N'), tuple(row)]),
  update: (oid: number, row: readonly Cell[], old?: { kind: 'K' | 'O'; cells: readonly Cell[] }) =>
    Buffer.concat([tag('U'), i32(oid), ...(old ? [tag(old.kind), tuple(old.cells)] : []), tag('N'), tuple(row)]),
  delete: (oid: number, kind: 'K' | 'O', old: readonly Cell[]) => Buffer.concat([tag('D'), i32(oid), tag(kind), tuple(old)]),
  truncate: (oids: readonly number[]) => Buffer.concat([tag('T'), i32(oids.length), u8(0), ...oids.map(i32)]),
  message: (prefix: string, content: string, lsn: string) => {
    const c = Buffer.from(content, 'utf8');
    return Buffer.concat([tag('M'), u8(1), i64(lsnOf(lsn)), str(prefix), i32(c.length), c]);
  },
  type: (oid: number, schema: string, name: string) => Buffer.concat([tag('Y'), i32(oid), str(schema), str(name)]),
  origin: (lsn: string, name: string) => Buffer.concat([tag('O'), i64(lsnOf(lsn)), str(name)]),
};

/** One decoder, as one stream has: relation messages are remembered for the rows after them. */
function decoder() {
  const plugin = new TextPgoutput({ protoVersion: 1, publicationNames: ['p'], messages: true });
  return (b: Buffer): StreamEvent | undefined => plainRows(toEvent(plugin.parse(b)));
}

/** Rows as plain objects (the library builds them without a prototype), for deepEqual. */
function plainRows(e: StreamEvent | undefined): StreamEvent | undefined {
  if (!e || !('row' in e || 'old' in e)) return e;
  const out = { ...e } as Record<string, unknown>;
  if ('row' in e) out.row = { ...e.row };
  if ('old' in e && e.old) out.old = { ...e.old };
  return out as StreamEvent;
}

// type OIDs (pg_type): what the library would otherwise convert to JS values
const INT8 = 20;
const TEXT = 25;
const ORDERS = [
  { name: 'id', type: INT8, key: true },
  { name: 'restaurant_id', type: INT8 },
  { name: 'total', type: 1700 }, // numeric
  { name: 'ratio', type: 701 }, // float8
  { name: 'paid', type: 16 }, // bool
  { name: 'at', type: 1184 }, // timestamptz
  { name: 'doc', type: 3802 }, // jsonb
  { name: 'tags', type: 1009 }, // text[]
  { name: 'blob', type: 17 }, // bytea
  { name: 'note', type: TEXT },
];
const ROW: Cell[] = [
  '9223372036854775807',
  '42',
  '12345678901234567890.00000000000000000001',
  '0.30000000000000004',
  't',
  '2026-12-06 23:59:59.123456+00',
  '{"a": [1, 2.50]}',
  '{a,"b c",NULL}',
  '\\x00ff',
  'café € 😀',
];
const named = (cells: readonly Cell[]) => Object.fromEntries(ORDERS.map((c, i) => [c.name, cells[i]]));

describe('pgoutput decoding (src/stream/decoder.ts), messages built from the protocol documentation', () => {
  it('begin and commit: exact 64-bit positions (above 2^53 too), the commit time in ms since 1970, the transaction id', () => {
    const decode = decoder();
    const at = Date.UTC(2026, 11, 6, 23, 59, 59, 123);
    assert.deepEqual(decode(msg.begin('1A/2B3C4D5E', pgTime(at, 456), 777)), { kind: 'begin', commitLsn: 0x1a2b3c4d5en, commitTime: at, xid: 777 });
    assert.deepEqual(decode(msg.commit('FFFFFFFF/FFFFFF00', 'FFFFFFFF/FFFFFFF8', pgTime(at, 999))), { kind: 'commit', endLsn: 2n ** 64n - 8n, commitTime: at });
  });

  it('relation: schema.table and each column with its type', () => {
    const decode = decoder();
    assert.deepEqual(decode(msg.relation(16384, 'public', 'orders', 'd', ORDERS)), {
      kind: 'relation',
      table: 'public.orders',
      columns: ORDERS.map((c) => ({ name: c.name, typeOid: c.type })),
    });
    assert.deepEqual(decode(msg.relation(16390, 'my schema', 'Odd"Name', 'f', [{ name: 'x y', type: TEXT }])), {
      kind: 'relation',
      table: 'my schema.Odd"Name',
      columns: [{ name: 'x y', typeOid: TEXT }],
    });
  });

  it("insert: every value stays the text the source printed (no number, boolean or Date), NULL stays null", () => {
    const decode = decoder();
    decode(msg.relation(16384, 'public', 'orders', 'd', ORDERS));
    assert.deepEqual(decode(msg.insert(16384, ROW)), { kind: 'insert', table: 'public.orders', row: named(ROW) });
    const withNulls = ROW.map((v, i) => (i === 0 ? v : null));
    assert.deepEqual(decode(msg.insert(16384, withNulls)), { kind: 'insert', table: 'public.orders', row: named(withNulls) });
  });

  it("update: the old key when the stream sends one ('K'), none when the key did not change, and 'u' (unchanged TOAST) as undefined", () => {
    const decode = decoder();
    decode(msg.relation(16384, 'public', 'orders', 'd', ORDERS));
    const row = ROW.map((v, i) => (i === ORDERS.length - 1 ? UNCHANGED : v));
    const plain = decode(msg.update(16384, row));
    assert.equal(plain?.kind, 'update');
    assert.equal(plain.kind === 'update' && plain.old, null, 'no old tuple: the key did not change');
    const newRow = plain.kind === 'update' ? plain.row : {};
    assert.equal(newRow.note, undefined, "'u': the applier leaves the column alone");
    assert.deepEqual({ ...newRow, note: 'x' }, { ...named(ROW), note: 'x' });

    const keyChanged = decode(msg.update(16384, ROW, { kind: 'K', cells: ROW.map((v, i) => (i === 0 ? '7' : null)) }));
    assert.ok(keyChanged?.kind === 'update');
    assert.equal(keyChanged.old?.id, '7', 'the old key, which the applier finds the row by');
    assert.equal(keyChanged.row.id, ROW[0]);
    assert.deepEqual(
      Object.entries(keyChanged.old ?? {}).filter(([, v]) => v !== undefined),
      [['id', '7']],
      'the old key tuple carries the key columns only',
    );
  });

  it("update of a REPLICA IDENTITY FULL table ('O'): the whole old row; a 'u' value of the new row is the old row's", () => {
    const decode = decoder();
    const cols = [
      { name: 'a', type: TEXT },
      { name: 'b', type: TEXT },
      { name: 'big', type: TEXT },
    ];
    decode(msg.relation(20000, 'public', 'keyless', 'f', cols));
    const e = decode(msg.update(20000, ['a2', null, UNCHANGED], { kind: 'O', cells: ['a1', 'b1', 'large text'] }));
    assert.deepEqual(e, { kind: 'update', table: 'public.keyless', old: { a: 'a1', b: 'b1', big: 'large text' }, row: { a: 'a2', b: null, big: 'large text' } });
  });

  it("delete: by key ('K') or by the whole row ('O')", () => {
    const decode = decoder();
    decode(msg.relation(16384, 'public', 'orders', 'd', ORDERS));
    const byKey = decode(msg.delete(16384, 'K', ORDERS.map((c, i) => (i === 0 ? '123' : null))));
    assert.ok(byKey?.kind === 'delete');
    assert.equal(byKey.table, 'public.orders');
    assert.deepEqual(Object.entries(byKey.old).filter(([, v]) => v !== undefined), [['id', '123']]);
    decode(msg.relation(20000, 'public', 'keyless', 'f', [{ name: 'a', type: TEXT }, { name: 'n', type: INT8 }]));
    assert.deepEqual(decode(msg.delete(20000, 'O', ['x', '9007199254740993'])), { kind: 'delete', table: 'public.keyless', old: { a: 'x', n: '9007199254740993' } });
  });

  it('a relation sent again (DDL on the source) describes the rows after it, still as text', () => {
    const decode = decoder();
    decode(msg.relation(16384, 'public', 'orders', 'd', ORDERS.slice(0, 2)));
    assert.deepEqual(decode(msg.insert(16384, ['1', '2'])), { kind: 'insert', table: 'public.orders', row: { id: '1', restaurant_id: '2' } });
    const added = [...ORDERS.slice(0, 2), { name: 'paid', type: 16 }];
    assert.deepEqual(decode(msg.relation(16384, 'public', 'orders', 'd', added)), {
      kind: 'relation',
      table: 'public.orders',
      columns: added.map((c) => ({ name: c.name, typeOid: c.type })),
    });
    assert.deepEqual(decode(msg.insert(16384, ['3', '4', 'f'])), { kind: 'insert', table: 'public.orders', row: { id: '3', restaurant_id: '4', paid: 'f' } });
  });

  it('truncate names every table; a logical message keeps its prefix and UTF-8 content; type and origin messages are nothing to apply', () => {
    const decode = decoder();
    decode(msg.relation(1, 'public', 'a', 'd', [{ name: 'id', type: INT8, key: true }]));
    decode(msg.relation(2, 'sales', 'b', 'd', [{ name: 'id', type: INT8, key: true }]));
    assert.deepEqual(decode(msg.truncate([2, 1])), { kind: 'truncate', tables: ['sales.b', 'public.a'] });
    assert.deepEqual(decode(msg.message('shardctl', '{"stop":"naïve ✓"}', '0/16B3748')), { kind: 'message', prefix: 'shardctl', content: '{"stop":"naïve ✓"}' });
    assert.equal(decode(msg.type(90000, 'public', 'mood')), undefined);
    assert.equal(decode(msg.origin('0/1', 'elsewhere')), undefined);
  });
});
