import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { cellToCenterChild, cellToParent, latLngToCell } from 'h3-js';
import { parseConfig } from '../../src/config/load.js';
import { topologyRouter } from '../../src/routing/router.js';
import { RouteError, rowRouter, type Placement } from '../../src/stream/route.js';
import type { TableModel } from '../../src/tables/model.js';
import { jumpHashReference } from '../helpers/jump-reference.js';
import { modelOf } from '../helpers/table-model.js';

/**
 * The change router (src/stream/route.ts): which shard a streamed row goes to. The expected shard
 * is the test's own: md5 and the paper's jump hash for a tenant, h3-js and the config's mapping for
 * a cell; a `via` row goes wherever the parent lookup says.
 */
const SHARDS = ['s0', 's1', 's2'];
const jumpConfig = parseConfig(`
source: postgres://app@mono/pos
strategy: { kind: jump, key: restaurant_id, pins: { "7": s2 } }
shards: [ { id: s0, primary: "postgres://a@h0/db" }, { id: s1, primary: "postgres://a@h1/db" }, { id: s2, primary: "postgres://a@h2/db" } ]
tables:
  - { name: restaurants, key: id }
  - { name: orders }
  - { name: order_items, via: "order_id -> orders.id" }
  - { name: currencies, reference: true }
`);

/** md5 of the tenant's text, first 8 bytes big-endian, through the paper's jump hash. */
const jumpShard = (tenant: string) => SHARDS[jumpHashReference(createHash('md5').update(tenant).digest().readBigUInt64BE(0), SHARDS.length)]!;

type ParentAsk = { parent: string; column: string; value: string };
/** A row router over the jump config whose parent lookups are recorded and answered by `answer`. */
function jumpRows(answer: Placement = { kind: 'shard', shard: 's1' }, placed: (unit: string) => string | undefined = () => undefined) {
  const model = modelOf(jumpConfig, {
    'public.restaurants': { 'id*': 'bigint', name: 'text' },
    'public.orders': { 'id*': 'bigint', restaurant_id: 'bigint', total: 'numeric(12,2)' },
    'public.order_items': { 'id*': 'bigint', order_id: 'bigint', qty: 'integer' },
    'public.currencies': { 'code*': 'text', usd_rate: 'numeric' },
  });
  const asked: ParentAsk[] = [];
  const rows = rowRouter(model, topologyRouter(jumpConfig), async (parent: TableModel, column, value) => (asked.push({ parent: parent.name, column, value }), answer), placed);
  return { rows, asked, t: (n: string) => model.table(`public.${n}`) };
}

describe('the change router (src/stream/route.ts)', () => {
  it("a tenant's row goes to its jump shard (md5 → jump hash), a pinned tenant to its pin", async () => {
    const { rows, t } = jumpRows();
    const tenants = [...Array(60).keys()].map((i) => String(i + 1)).filter((x) => x !== '7');
    assert.ok(new Set(tenants.map(jumpShard)).size === 3, 'the tenants reach every shard');
    for (const tenant of tenants) {
      assert.deepEqual(await rows.route(t('orders'), { id: '1', restaurant_id: tenant, total: '1.00' }), { kind: 'shard', shard: jumpShard(tenant), unit: tenant });
      assert.deepEqual(await rows.route(t('restaurants'), { id: tenant, name: 'x' }), { kind: 'shard', shard: jumpShard(tenant), unit: tenant }, 'keyed by its own id');
    }
    assert.notEqual(jumpShard('7'), 's2', 'the pin moves tenant 7');
    assert.deepEqual(await rows.route(t('orders'), { id: '1', restaurant_id: '7', total: null }), { kind: 'shard', shard: 's2', unit: '7' });
  });

  it('a unit the catalog places elsewhere (a move flipped it) goes where it is placed', async () => {
    const tenant = '12';
    const other = SHARDS.find((s) => s !== jumpShard(tenant))!;
    const { rows, t } = jumpRows(undefined, (u) => (u === tenant ? other : undefined));
    assert.deepEqual(await rows.route(t('orders'), { id: '1', restaurant_id: tenant, total: '0' }), { kind: 'shard', shard: other, unit: tenant });
    assert.deepEqual(await rows.route(t('orders'), { id: '2', restaurant_id: '13', total: '0' }), { kind: 'shard', shard: jumpShard('13'), unit: '13' });
  });

  it('a reference row goes to every shard; a via row to its parent row\'s shard, asked with the parent table, column and value', async () => {
    const { rows, asked, t } = jumpRows({ kind: 'shard', shard: 's1' });
    assert.deepEqual(await rows.route(t('currencies'), { code: 'USD', usd_rate: '1' }), { kind: 'all' });
    assert.deepEqual(await rows.route(t('order_items'), { id: '5', order_id: '99', qty: '2' }), { kind: 'shard', shard: 's1' });
    assert.deepEqual(asked, [{ parent: 'public.orders', column: 'id', value: '99' }]);
    const lost = jumpRows({ kind: 'unknown', why: 'no parent' });
    assert.deepEqual(await lost.rows.route(lost.t('order_items'), { id: '5', order_id: '100', qty: '2' }), { kind: 'unknown', why: 'no parent' });
  });

  it('a NULL routing value is a RouteError naming the table and column (the follower stops, exit 3); a missing column is internal', async () => {
    const { rows, t } = jumpRows();
    await assert.rejects(rows.route(t('orders'), { id: '1', restaurant_id: null, total: '1' }), (e: Error) => {
      assert.ok(e instanceof RouteError);
      assert.match(e.message, /table public\.orders: a streamed row has a NULL restaurant_id; it belongs to no unit/);
      return true;
    });
    await assert.rejects(rows.route(t('order_items'), { id: '1', order_id: null, qty: '1' }), RouteError);
    await assert.rejects(rows.route(t('orders'), { id: '1', total: '1' }), (e: Error) => !(e instanceof RouteError) && /internal/.test(e.message));
  });

  describe('h3', () => {
    const seoul = cellToParent(latLngToCell(37.5665, 126.978, 12), 3);
    const tokyo = cellToParent(latLngToCell(35.6762, 139.6503, 12), 3);
    const config = parseConfig(`
source: postgres://app@mono/geo
strategy: { kind: h3, defaultShard: s0, mapping: [ { cell: "${seoul}", shard: s1 }, { cell: "${tokyo}", shard: s2 } ] }
shards: [ { id: s0, primary: "postgres://a@h0/db" }, { id: s1, primary: "postgres://a@h1/db" }, { id: s2, primary: "postgres://a@h2/db" } ]
tables:
  - { name: locations, lat: latitude, lng: longitude }
  - { name: chat_rooms, cell: h3_cell }
  - { name: messages, via: "room_id -> chat_rooms.id" }
`);
    const model = modelOf(config, {
      'public.locations': { 'id*': 'bigint', latitude: 'double precision', longitude: 'double precision' },
      'public.chat_rooms': { 'id*': 'bigint', h3_cell: 'bigint' },
      'public.messages': { 'id*': 'bigint', room_id: 'bigint' },
    });
    const rows = (placed: (u: string) => string | undefined = () => undefined) => rowRouter(model, topologyRouter(config), async () => ({ kind: 'shard', shard: 's2' }), placed);
    /** an H3 index as the table stores it: the bigint of a resolution-12 cell, as text */
    const stored = (cell12: string) => BigInt(`0x${cell12}`).toString();

    it('a cell column goes to its shard-resolution parent\'s mapped shard (else the default); a lat/lng row by its resolution-12 cell', async () => {
      const r = rows();
      const rooms = model.table('public.chat_rooms');
      for (const [cell, shard] of [[seoul, 's1'], [tokyo, 's2']] as const) {
        assert.deepEqual(await r.route(rooms, { id: '1', h3_cell: stored(cellToCenterChild(cell, 12)) }), { kind: 'shard', shard, unit: cell });
      }
      const paris = cellToParent(latLngToCell(48.8566, 2.3522, 12), 3);
      assert.deepEqual(await r.route(rooms, { id: '1', h3_cell: stored(latLngToCell(48.8566, 2.3522, 12)) }), { kind: 'shard', shard: 's0', unit: paris });
      const locations = model.table('public.locations');
      assert.deepEqual(await r.route(locations, { id: '1', latitude: '37.5665', longitude: '126.978' }), { kind: 'shard', shard: 's1', unit: seoul });
      assert.deepEqual(await r.route(locations, { id: '2', latitude: '48.8566', longitude: '2.3522' }), { kind: 'shard', shard: 's0', unit: paris });
      assert.deepEqual(await r.route(model.table('public.messages'), { id: '3', room_id: '1' }), { kind: 'shard', shard: 's2' });
    });

    it('a cell the catalog places elsewhere goes where it is placed', async () => {
      const r = rows((u) => (u === seoul ? 's2' : undefined));
      assert.deepEqual(await r.route(model.table('public.locations'), { id: '1', latitude: '37.5665', longitude: '126.978' }), { kind: 'shard', shard: 's2', unit: seoul });
      assert.deepEqual(await r.route(model.table('public.chat_rooms'), { id: '1', h3_cell: stored(cellToCenterChild(seoul, 12)) }), { kind: 'shard', shard: 's2', unit: seoul });
    });
  });
});
