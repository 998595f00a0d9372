/**
 * `npm run bench -- --fixture guards`: what shardctl's write guards add to an application's writes
 * on a shard after the split (issues #24 / #26 follow-up). Every row written on a shard passes the
 * fence trigger (fence/unit-guard.ts: the unit is not fenced) and, from the first topology change on,
 * the route guard (fence/route-guard.ts: a row naming its unit is routed here).
 *
 * Two small fleets (2 shards): a jump one (`orders` keyed by tenant, `lines` via orders.id) and an h3
 * one (`places` by lat/lng). Each is migrated, then a pin (a mapping entry) is moved so that the
 * route guard is live. On the first shard, per table and per round: N single-row INSERTs and UPDATEs
 * (autocommit, one transaction each) and INSERTs / UPDATEs of 1,000 rows per statement, once with
 * the guard's triggers and once without them (dropped and created again: the same table, indexes and
 * rows), the order alternating by round. Reported: median µs per row of each, the ratio;
 * targets in TARGETS below.
 */
import { cellToLatLng, cellToParent, gridDisk, latLngToCell } from 'h3-js';
import pg from 'pg';
import { startFleet } from '../harness/fleet/index.js';
import { createRouter, migrate, parseConfig, rebalance, type Config } from '../src/index.js';

type Table = 'orders' | 'lines' | 'places';
type Op = 'insert 1 row/tx' | 'update 1 row/tx' | 'insert 1000 rows/stmt' | 'update 1000 rows/stmt';
const OPS: Op[] = ['insert 1 row/tx', 'update 1 row/tx', 'insert 1000 rows/stmt', 'update 1000 rows/stmt'];
const BATCH = 1000;
/** ids the bench inserts start here (the fixture's own rows are below it) */
const BASE = 1_000_000_000;

/**
 * The targets. Citus and PgDog put nothing on a worker's / shard's write path: they route in the
 * coordinator / proxy and a shard takes any row (so a row written to the wrong shard is stranded
 * silently). shardctl's guard is the price of refusing that, so its cost is measured against the
 * bare table: a single-row transaction (the OLTP case, dominated by the commit) may cost at most
 * 15% more; a 1,000-row statement (bulk load, backfill) at most 2× (a trigger per row is paid there
 * without a commit to hide it), reported per table.
 */
const TARGETS: Record<Op, number> = { 'insert 1 row/tx': 1.15, 'update 1 row/tx': 1.15, 'insert 1000 rows/stmt': 2, 'update 1000 rows/stmt': 2 };

export interface GuardRun {
  table: Table;
  op: Op;
  guarded: boolean;
  round: number;
  rows: number;
  usPerRow: number;
}

interface Workload {
  readonly table: Table;
  /** one row's INSERT: $1 id, $2 the row's i (the workload picks its unit from it) */
  readonly insertOne: string;
  /** a statement inserting BATCH rows with ids $1 … $1 + BATCH - 1 */
  readonly insertMany: string;
}

export async function guardsBench(
  args: { scale: number; repeat: number; settings: Record<string, string>; durable: boolean },
  log: (s: string) => void,
): Promise<{ runs: GuardRun[]; markdown: string; pass: boolean }> {
  const n = Math.round(args.scale);
  const rounds = Math.max(3, args.repeat);
  const settings = { autovacuum: 'off', ...(args.durable ? { fsync: 'on', full_page_writes: 'on' } : {}), ...args.settings };
  const runs: GuardRun[] = [];
  for (const kind of ['jump', 'h3'] as const) {
    log(`guards: staging the ${kind} fleet…`);
    const fleet = await startFleet({ shards: 2, replicas: 0, settings });
    try {
      const shards = fleet.shards.map((s) => ({ id: s.id, primary: s.primary.url() }));
      const url = shards[0]!.primary;
      const { config, workloads } = kind === 'jump' ? await stageJump(fleet.source.url(), shards, fleet) : await stageH3(fleet.source.url(), shards, fleet);
      await migrate(config, {});
      await moveOne(config, kind);
      const c = new pg.Client({ connectionString: url, application_name: 'shardctl bench guards' });
      await c.connect();
      try {
        const rules = Number((await c.query('SELECT count(*) AS n FROM shardctl.route_rules')).rows[0].n);
        if (rules === 0) throw new Error('the route guard is not live on the shard (no shardctl.route_rules): the bench would measure the fence alone');
        const guards = await guardTriggers(c, workloads.map((w) => w.table));
        for (let round = 1; round <= rounds; round++) {
          for (const w of workloads) {
            for (const guarded of round % 2 ? [true, false] : [false, true]) {
              await guards.set(c, w.table, guarded);
              const r = await measure(c, w, n);
              for (const op of OPS) runs.push({ table: w.table, op, guarded, round, rows: r[op].rows, usPerRow: r[op].us / r[op].rows });
              log(`guards: round ${round} ${w.table} ${guarded ? 'guarded' : 'bare'}: ${OPS.map((op) => `${op} ${(r[op].us / r[op].rows).toFixed(1)} µs`).join(', ')}`);
            }
          }
        }
        for (const w of workloads) await guards.set(c, w.table, true);
      } finally {
        await c.end();
      }
    } finally {
      await fleet.stop();
    }
  }
  return report(runs, n, rounds);
}

/**
 * The guard's triggers of each table, dropped for a bare pass and created again for a guarded one: a
 * disabled trigger with transition tables still has PostgreSQL collect them, so disabling would not
 * measure the bare table.
 */
async function guardTriggers(c: pg.Client, tables: Table[]) {
  const defs = new Map<Table, { name: string; def: string }[]>();
  for (const t of tables) {
    const r = await c.query<{ name: string; def: string }>(
      `SELECT tgname AS name, pg_get_triggerdef(oid) AS def FROM pg_trigger WHERE tgrelid = $1::regclass AND tgname LIKE 'shardctl_fence%' AND tgparentid = 0 ORDER BY 1`,
      [t],
    );
    if (!r.rows.length) throw new Error(`no guard trigger on ${t}`);
    defs.set(t, r.rows);
  }
  return {
    set: async (c: pg.Client, t: Table, on: boolean) => {
      for (const x of defs.get(t)!) {
        await c.query(`DROP TRIGGER IF EXISTS ${x.name} ON ${t}`);
        if (on) await c.query(`${x.def}; ALTER TABLE ${t} ENABLE ALWAYS TRIGGER ${x.name}`);
      }
    },
  };
}

/** One pass of the four operations; the bench's own rows are removed first (guard bypassed, as shardctl's sessions do). */
async function measure(c: pg.Client, w: Workload, n: number): Promise<Record<Op, { rows: number; us: number }>> {
  await c.query(`SET shardctl.bypass = on`);
  await c.query(`DELETE FROM ${w.table} WHERE id >= ${BASE}`);
  await c.query(`RESET shardctl.bypass`);
  await c.query(`VACUUM ${w.table}`);
  const out = {} as Record<Op, { rows: number; us: number }>;
  const timed = async (op: Op, rows: number, f: () => Promise<void>) => {
    const t0 = performance.now();
    await f();
    out[op] = { rows, us: (performance.now() - t0) * 1000 };
  };
  const batches = Math.max(1, Math.round(n / BATCH));
  const many = BASE + n;
  await timed('insert 1 row/tx', n, async () => {
    for (let i = 0; i < n; i++) await c.query({ name: `${w.table}-ins`, text: w.insertOne, values: [BASE + i, i] });
  });
  await timed('update 1 row/tx', n, async () => {
    for (let i = 0; i < n; i++) await c.query({ name: `${w.table}-upd`, text: `UPDATE ${w.table} SET v = v + 1 WHERE id = $1`, values: [BASE + i] });
  });
  await timed('insert 1000 rows/stmt', batches * BATCH, async () => {
    for (let b = 0; b < batches; b++) await c.query({ name: `${w.table}-insb`, text: w.insertMany, values: [many + b * BATCH] });
  });
  await timed('update 1000 rows/stmt', batches * BATCH, async () => {
    for (let b = 0; b < batches; b++) await c.query({ name: `${w.table}-updb`, text: `UPDATE ${w.table} SET v = v + 1 WHERE id >= $1 AND id < $1 + ${BATCH}`, values: [many + b * BATCH] });
  });
  return out;
}

type Shards = { id: string; primary: string }[];
type Servers = { source: { query: (q: string) => Promise<unknown> }; shards: readonly { primary: { query: (q: string) => Promise<unknown> } }[] };

/** orders keyed by tenant (200 tenants × 50 orders), lines via orders.id; the workloads write units routed to the first shard */
async function stageJump(source: string, shards: Shards, fleet: Servers): Promise<{ config: Config; workloads: Workload[] }> {
  const ddl = [
    'CREATE TABLE orders (id bigint PRIMARY KEY, tenant bigint NOT NULL, v int NOT NULL)',
    'CREATE INDEX orders_tenant ON orders (tenant)',
    'CREATE TABLE lines (id bigint PRIMARY KEY, order_id bigint NOT NULL, v int NOT NULL)',
    'CREATE INDEX lines_order ON lines (order_id)',
  ];
  for (const s of [fleet.source, ...fleet.shards.map((x) => x.primary)]) for (const d of ddl) await s.query(d);
  await fleet.source.query('INSERT INTO orders SELECT g, g % 200, 0 FROM generate_series(0, 9999) g');
  await fleet.source.query('INSERT INTO lines SELECT g, g, 0 FROM generate_series(0, 9999) g');
  await fleet.source.query('VACUUM ANALYZE');
  const doc = { source, strategy: { kind: 'jump', key: 'tenant', pins: {} }, shards, tables: [{ name: 'orders', key: 'tenant' }, { name: 'lines', via: 'order_id -> orders.id' }] };
  const config = parseConfig(JSON.stringify(doc), 'guards (jump)');
  const router = createRouter(config);
  // tenants routed to the first shard (but tenant 1, which moveOne pins away), and their orders
  const here = Array.from({ length: 200 }, (_, t) => t).filter((t) => t !== 1 && router.shardFor(String(t)) === shards[0]!.id);
  const orders = Array.from({ length: 10_000 }, (_, g) => g).filter((g) => here.includes(g % 200));
  const tenants = `'{${here.join(',')}}'::bigint[]`;
  const parents = `'{${orders.join(',')}}'::bigint[]`;
  return {
    config,
    workloads: [
      { table: 'orders', insertOne: `INSERT INTO orders (id, tenant, v) VALUES ($1, (${tenants})[1 + $2::int % ${here.length}], 0)`, insertMany: `INSERT INTO orders (id, tenant, v) SELECT $1::bigint + g, (${tenants})[1 + g % ${here.length}], 0 FROM generate_series(0, ${BATCH - 1}) g` },
      { table: 'lines', insertOne: `INSERT INTO lines (id, order_id, v) VALUES ($1, (${parents})[1 + $2::int % ${orders.length}], 0)`, insertMany: `INSERT INTO lines (id, order_id, v) SELECT $1::bigint + g, (${parents})[1 + g % ${orders.length}], 0 FROM generate_series(0, ${BATCH - 1}) g` },
    ],
  };
}

/** places by lat/lng: points in 40 resolution-3 cells around Lyon, mapped alternately to the two shards; the workloads write points of the first shard's cells */
async function stageH3(source: string, shards: Shards, fleet: Servers): Promise<{ config: Config; workloads: Workload[] }> {
  await Promise.all([fleet.source, ...fleet.shards.map((x) => x.primary)].map((s) => s.query('CREATE TABLE places (id bigint PRIMARY KEY, lat float8 NOT NULL, lng float8 NOT NULL, v int NOT NULL)')));
  const cells = gridDisk(latLngToCell(45.76, 4.84, 3), 3).sort();
  const mapping = cells.map((cell, i) => ({ cell, shard: shards[i % 2]!.id }));
  // points: each cell's resolution-9 descendants around its centre (a deterministic spread)
  const points = cells.flatMap((cell) => gridDisk(latLngToCell(...cellToLatLng(cell), 9), 6).map((p) => ({ cell, at: cellToLatLng(p) })));
  const ours = points.filter((p) => cellToParent(latLngToCell(p.at[0], p.at[1], 12), 3) === p.cell && p.cell !== mapping[0]!.cell && mapping.find((m) => m.cell === p.cell)!.shard === shards[0]!.id);
  const values = points.map((p, i) => `(${i}, ${p.at[0]}, ${p.at[1]}, 0)`).join(',');
  await fleet.source.query(`INSERT INTO places VALUES ${values}`);
  await fleet.source.query('VACUUM ANALYZE');
  const doc = { source, strategy: { kind: 'h3', defaultShard: shards[1]!.id, mapping }, shards, tables: [{ name: 'places', lat: 'lat', lng: 'lng' }] };
  const lats = `'{${ours.map((p) => p.at[0]).join(',')}}'::float8[]`;
  const lngs = `'{${ours.map((p) => p.at[1]).join(',')}}'::float8[]`;
  const k = ours.length;
  return {
    config: parseConfig(JSON.stringify(doc), 'guards (h3)'),
    workloads: [
      { table: 'places', insertOne: `INSERT INTO places (id, lat, lng, v) VALUES ($1, (${lats})[1 + $2::int % ${k}], (${lngs})[1 + $2::int % ${k}], 0)`, insertMany: `INSERT INTO places (id, lat, lng, v) SELECT $1::bigint + g, (${lats})[1 + g % ${k}], (${lngs})[1 + g % ${k}], 0 FROM generate_series(0, ${BATCH - 1}) g` },
    ],
  };
}

/** A topology change (tenant 1 pinned, the first mapping entry moved) so that the shards check routes from now on. */
async function moveOne(config: Config, kind: 'jump' | 'h3'): Promise<void> {
  const st = config.strategy;
  const second = config.shards[1]!.id;
  const next =
    st.kind === 'jump'
      ? { ...config, strategy: { ...st, pins: { ...st.pins, '1': createRouter(config).shardFor('1') === second ? config.shards[0]!.id : second } } }
      : st.kind === 'h3'
        ? { ...config, strategy: { ...st, mapping: st.mapping.map((m, i) => (i === 0 ? { ...m, shard: m.shard === second ? config.shards[0]!.id : second } : m)) } }
        : config;
  if (next === config) throw new Error(`internal: no topology change for ${kind}`);
  await rebalance(next as Config, { apply: true, offline: true });
}

function report(runs: GuardRun[], n: number, rounds: number): { runs: GuardRun[]; markdown: string; pass: boolean } {
  const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  };
  const lines = [
    `${n} single-row transactions and ${Math.max(1, Math.round(n / BATCH))} statements of ${BATCH} rows per operation, ${rounds} rounds alternating guarded / bare; medians.`,
    '',
    '| table (route) | operation | bare µs/row | guarded µs/row | ratio | target | result |',
    '|---|---|---:|---:|---:|---:|---|',
  ];
  const routeOf: Record<Table, string> = { orders: 'jump key', lines: 'via orders.id', places: 'lat/lng' };
  let pass = true;
  for (const table of ['orders', 'lines', 'places'] as const) {
    for (const op of OPS) {
      const of = (guarded: boolean) => runs.filter((r) => r.table === table && r.op === op && r.guarded === guarded).map((r) => r.usPerRow);
      if (!of(true).length) continue;
      const bare = median(of(false));
      const guarded = median(of(true));
      const ratio = guarded / bare;
      const ok = ratio <= TARGETS[op];
      pass &&= ok;
      lines.push(`| ${table} (${routeOf[table]}) | ${op} | ${bare.toFixed(1)} | ${guarded.toFixed(1)} | ${ratio.toFixed(2)} × | ≤ ${TARGETS[op]} × | ${ok ? 'PASS' : '**FAIL**'} |`);
    }
  }
  return { runs, markdown: `${lines.join('\n')}\n`, pass };
}
