import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig } from '../../src/config/load.js';
import {
  deleteManySql,
  deleteOneSql,
  deleteRowSql,
  existsSql,
  fullRowOf,
  insertManySql,
  insertSql,
  keyOf,
  selectByColumnSql,
  selectByKeySql,
  Statements,
  updateManySql,
  updateOneSql,
  updateSql,
} from '../../src/stream/statements.js';
import type pg from 'pg';
import { modelOf } from '../helpers/table-model.js';

/**
 * The statements the follower applies changes with (src/stream/statements.ts), built without a
 * server: the text (identifiers quoted, each value cast to its column's type) and which parameter
 * carries what, in the order the applier passes values (set columns, then key columns).
 */
const config = parseConfig(`
source: postgres://app@mono/pos
strategy: { kind: jump, key: restaurant_id }
shards: [ { id: s0, primary: "postgres://a@h0/db" } ]
tables:
  - { name: orders }
  - { name: lines, key: restaurant_id }
  - { name: Odd"Name, schema: We ird, key: restaurant_id }
  - { name: history, key: restaurant_id }
`);
const model = modelOf(config, {
  orders: { 'id*': 'bigint', restaurant_id: 'bigint', total: 'numeric(12,2)', note: 'text' },
  lines: { 'order_id*': 'bigint', 'no*': 'integer', restaurant_id: 'bigint', qty: 'integer' },
  'Odd"Name': { 'k"ey*': 'text', restaurant_id: 'bigint', 'Mixed Case': 'timestamp with time zone' },
  history: { restaurant_id: 'bigint', event: 'character(4)', at: 'timestamp with time zone' }, // no primary key
});
const orders = model.table('public.orders');
const lines = model.table('public.lines');
const odd = model.table('We ird.Odd"Name');
const history = model.table('public.history');

/** The parameter numbers a statement uses, in order of first use. */
const params = (text: string) => [...new Set([...text.matchAll(/\$(\d+)/g)].map((m) => Number(m[1])))];

describe('the follower\'s statements (src/stream/statements.ts)', () => {
  it('one row: INSERT binds the columns in order; UPDATE binds the set columns, then the key; DELETE the key', () => {
    assert.equal(insertSql(orders, ['id', 'restaurant_id', 'total']), 'INSERT INTO "public"."orders" ("id", "restaurant_id", "total") VALUES ($1, $2, $3)');
    assert.equal(updateSql(orders, ['total', 'note']), 'UPDATE "public"."orders" SET "total" = $1, "note" = $2 WHERE "id" = $3');
    assert.equal(updateSql(lines, ['qty']), 'UPDATE "public"."lines" SET "qty" = $1 WHERE "order_id" = $2 AND "no" = $3');
    assert.equal(deleteRowSql(lines), 'DELETE FROM "public"."lines" WHERE "order_id" = $1 AND "no" = $2');
    assert.equal(selectByKeySql(lines), 'SELECT "order_id"::text AS "order_id", "no"::text AS "no", "restaurant_id"::text AS "restaurant_id", "qty"::text AS "qty" FROM "public"."lines" WHERE "order_id" = $1 AND "no" = $2');
    assert.equal(existsSql(orders, 'id'), 'SELECT 1 FROM "public"."orders" WHERE "id" = $1 LIMIT 1');
  });

  it('a batch: one text array per column, each value cast from its text to the column type; one text whatever the number of rows', () => {
    assert.equal(
      insertManySql(orders, ['id', 'total', 'note']),
      'INSERT INTO "public"."orders" ("id", "total", "note") SELECT x.c0::bigint, x.c1::numeric(12,2), x.c2::text FROM unnest($1::text[], $2::text[], $3::text[]) AS x(c0, c1, c2)',
    );
    assert.equal(deleteManySql(orders), 'DELETE FROM "public"."orders" WHERE "id" = ANY($1::text[]::bigint[])');
    assert.equal(deleteManySql(lines), 'DELETE FROM "public"."lines" WHERE ("order_id", "no") IN (SELECT * FROM unnest($1::text[]::bigint[], $2::text[]::integer[]))');
    assert.equal(selectByColumnSql(lines, 'restaurant_id').endsWith('FROM "public"."lines" WHERE "restaurant_id" = ANY($1::bigint[])'), true);
  });

  it('a batch of UPDATEs: set columns then key columns as arrays, matched on the key, RETURNING the ordinal of each row found', () => {
    const text = updateManySql(lines, ['qty', 'restaurant_id']);
    assert.equal(
      text,
      'UPDATE "public"."lines" AS x SET "qty" = v.c0::integer, "restaurant_id" = v.c1::bigint FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS v(c0, c1, c2, c3, n) WHERE x."order_id" = v.c2::bigint AND x."no" = v.c3::integer RETURNING v.n',
    );
    assert.deepEqual(params(text), [1, 2, 3, 4], 'two set columns and two key columns: four arrays');
  });

  it('identifiers are quoted, quotes doubled, whatever the schema, table and column names', () => {
    assert.equal(insertSql(odd, ['k"ey', 'Mixed Case']), 'INSERT INTO "We ird"."Odd""Name" ("k""ey", "Mixed Case") VALUES ($1, $2)');
    assert.equal(updateSql(odd, ['Mixed Case']), 'UPDATE "We ird"."Odd""Name" SET "Mixed Case" = $1 WHERE "k""ey" = $2');
    assert.equal(deleteManySql(odd), 'DELETE FROM "We ird"."Odd""Name" WHERE "k""ey" = ANY($1::text[]::text[])');
    assert.match(insertManySql(odd, ['Mixed Case']), /SELECT x\.c0::timestamp with time zone FROM unnest\(\$1::text\[\]\)/);
  });

  it("the key of a change: the old key when the stream sent one (a key-changing UPDATE), else the row's; a missing key value is internal", () => {
    assert.deepEqual(keyOf(lines, { order_id: '10', no: '2', qty: '5' }), ['10', '2']);
    assert.deepEqual(keyOf(lines, { order_id: '11', no: '3', qty: '5' }, { order_id: '10', no: '2' }), ['10', '2'], 'the row is found by its old key');
    assert.deepEqual(keyOf(lines, { order_id: '11', no: '3' }, { order_id: '10', no: undefined }), ['10', '3'], 'an old key column not sent keeps the row\'s');
    assert.deepEqual(keyOf(lines, { order_id: '11', no: '3' }, null), ['11', '3']);
    assert.throws(() => keyOf(lines, { order_id: '11', no: null }), /internal: public\.lines: no value for key column no/);
  });

  it('a table without a primary key: a row is all its values in column order, NULLs kept; one row equal to it is updated or deleted', () => {
    assert.deepEqual(fullRowOf(history, { at: '2026-01-01 00:00:00+00', restaurant_id: '4', event: null }), ['4', null, '2026-01-01 00:00:00+00']);
    assert.throws(() => fullRowOf(history, { restaurant_id: '4', event: 'in  ' }), /internal: public\.history: the streamed row has no value for at/);
    const del = deleteOneSql(history);
    assert.deepEqual(params(del), [1]);
    assert.match(del, /^DELETE FROM "public"\."history" AS x USING \(SELECT y\.tableoid AS o, y\.ctid AS c FROM "public"\."history" AS y WHERE jsonb_build_array\(.*\) = \$1::jsonb LIMIT 1\) AS m WHERE x\.tableoid = m\.o AND x\.ctid = m\.c$/);
    assert.match(del, /CASE WHEN y\."event" IS NULL THEN NULL ELSE format\('%s', y\."event"\) END/, "char(n) compared as its output function prints it (format('%s'), not ::text)");
    const upd = updateOneSql(history, history.columns);
    assert.deepEqual(params(upd), [1, 2, 3, 4], 'three new values, then the old row');
    assert.match(upd, /^UPDATE "public"\."history" AS x SET "restaurant_id" = \$1, "event" = \$2, "at" = \$3 FROM \(.*= \$4::jsonb LIMIT 1\) AS m WHERE x\.tableoid = m\.o AND x\.ctid = m\.c$/);
  });

  it('each distinct statement text is prepared once per connection, under its own name', async () => {
    const sent: { name?: string; text: string; values?: unknown[] }[] = [];
    const recorder = { query: async (q: { name?: string; text: string; values?: unknown[] }) => (sent.push(q), { rows: [], rowCount: 0 }) };
    const s = new Statements(recorder as unknown as pg.ClientBase);
    const a = insertSql(orders, ['id']);
    const b = deleteRowSql(orders);
    for (const [text, v] of [[a, ['1']], [b, ['1']], [a, ['2']]] as const) await s.run(text, [...v]);
    assert.deepEqual(sent.map((q) => [q.name, q.text, q.values]), [
      ['shardctl_0', a, ['1']],
      ['shardctl_1', b, ['1']],
      ['shardctl_0', a, ['2']],
    ]);
  });
});
