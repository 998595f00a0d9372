import type pg from 'pg';
import type { Config } from '../config/types.js';
import { withClient } from '../db/connect.js';
import { shardEndpoint } from '../db/endpoints.js';
import { withBoundedLocks } from '../db/lock-wait.js';
import { TOPOLOGY_MIGRATION } from '../catalog/topology-sql.js';
import { topologyRouter } from '../routing/router.js';
import { FENCE_LOCK } from '../catalog/locks.js';

/**
 * The route guard (issue #24): a shard refuses a write of a unit that the catalog does not route to
 * it, so no unit can be created where, under the recorded topology, it is not home and no move will
 * look for it (a tenant created by a router still on the old topology, or while a topology change is
 * being recorded, would otherwise be stranded: its rows on a shard its route does not name).
 *
 * Each shard holds the catalog's routing rule as data (shardctl.route_rules: the shards in bucket
 * order, the default shard, itself) and the units routed apart from the strategy
 * (shardctl.route_units: pins, mapping entries and held routes, a held route first). Generation
 * `current` is the recorded topology; while a change is being recorded (record-topology.ts)
 * a second generation `next` holds the one to come, and a write must be home under both: between the
 * two commits no unit can be created where either topology would not look for it.
 *
 * Exact under concurrency as the fence is (fence/unit-guard.ts): the check runs after the fence gate (shared
 * FENCE_LOCK, and under REPEATABLE READ / SERIALIZABLE the fence_epoch row FOR KEY SHARE); a rule
 * change takes FENCE_LOCK exclusively and bumps the epoch, so it waits for every writer that passed
 * the check under the old rule, and a writer whose snapshot predates it fails with 40001.
 * A shard with no rule (before its first topology change) checks nothing.
 */
export function routeGuardSql(): string[] {
  const fn = (name: string) => {
    const m = TOPOLOGY_MIGRATION.match(new RegExp(`CREATE FUNCTION shardctl\\.${name}\\([\\s\\S]*?\\$\\$;`));
    if (!m) throw new Error(`internal: shardctl.${name} not found in the catalog's SQL`);
    return m[0].replace('CREATE FUNCTION', 'CREATE OR REPLACE FUNCTION').replace(/;$/, '');
  };
  return [
    `CREATE TABLE IF NOT EXISTS shardctl.route_rules (
       gen text PRIMARY KEY, me text NOT NULL, kind text NOT NULL, shards text[] NOT NULL, default_shard text, version bigint)`,
    `CREATE TABLE IF NOT EXISTS shardctl.route_units (gen text NOT NULL, unit text NOT NULL, shard text NOT NULL, PRIMARY KEY (gen, unit))`,
    fn('jump_hash'),
    fn('tenant_key64'),
    // tenant_key64 as one expression (its catalog form has a subquery): PostgreSQL inlines it into
    // route_check's cached plan instead of planning its body again in every transaction (measured
    // ~100 µs of each single-row write; bench --fixture guards). STABLE, not IMMUTABLE: convert_to is
    // stable, and an IMMUTABLE SQL function with a stable body is not inlined. Equal to tenant_key64
    // (test/guard-calls.test.ts checks it against md5 computed by the test).
    `CREATE OR REPLACE FUNCTION shardctl.route_key64(tenant text) RETURNS numeric LANGUAGE sql STABLE STRICT PARALLEL SAFE AS $$
       SELECT (('x' || left(md5(convert_to(tenant, 'UTF8')), 16))::bit(64)::bigint::numeric + 18446744073709551616) % 18446744073709551616 $$`,
    `CREATE OR REPLACE FUNCTION shardctl.route_check(u text) RETURNS void LANGUAGE plpgsql AS $$
     DECLARE r shardctl.route_rules; home text;
     BEGIN
       IF u IS NULL THEN RETURN; END IF;
       FOR r IN SELECT * FROM shardctl.route_rules ORDER BY gen LOOP
         SELECT x.shard INTO home FROM shardctl.route_units x WHERE x.gen = r.gen AND x.unit = u;
         IF home IS NULL THEN
           home := CASE WHEN r.kind = 'jump' THEN r.shards[shardctl.jump_hash(shardctl.route_key64(u), cardinality(r.shards)) + 1] ELSE r.default_shard END;
         END IF;
         IF home IS DISTINCT FROM r.me THEN
           RAISE EXCEPTION 'shardctl: unit % belongs on shard % under the % topology, not on shard %; its rows are refused here', u, home,
             CASE r.gen WHEN 'next' THEN 'coming' ELSE 'recorded' END, r.me
             USING ERRCODE = '40001', HINT = 'retry the transaction routed by the catalog (a live router, shardctl.shard_for_key/shard_for_cell): it names shard '
               || home || CASE r.gen WHEN 'next' THEN ' once the topology change being recorded commits' ELSE '; a router built from the config file needs the current config' END;
         END IF;
       END LOOP;
     END $$`,
  ];
}

/** What a shard checks writes against: a topology and its units routed apart from the strategy. */
export interface RouteRule {
  readonly kind: 'jump' | 'h3';
  readonly shards: readonly string[];
  readonly defaultShard?: string;
  readonly version?: number;
  /** unit → shard: held routes, then pins or mapping entries */
  readonly units: ReadonlyMap<string, string>;
}

/** The rule of a topology with its held routes (unit → the shard holding its rows). */
export function routeRule(t: Pick<Config, 'strategy' | 'shards'>, held: ReadonlyMap<string, string>, version?: number): RouteRule {
  const st = t.strategy;
  const units = new Map<string, string>(st.kind === 'jump' ? Object.entries(st.pins) : st.mapping.map((m) => [m.cell.toLowerCase(), m.shard]));
  for (const [u, s] of held) units.set(u, s);
  return { kind: st.kind, shards: t.shards.map((s) => s.id), defaultShard: st.kind === 'h3' ? st.defaultShard : undefined, version, units };
}

/** unit → the shard that holds its rows, for every placed unit `t` routes elsewhere (what syncHeldRoutes will record). */
export function heldUnder(t: Pick<Config, 'strategy' | 'shards'>, placed: ReadonlyMap<string, string>): Map<string, string> {
  const router = topologyRouter(t);
  return new Map([...placed].filter(([u, s]) => router.shardForUnit(u) !== s));
}

/**
 * Writes the rule generations on every shard of `fleet` that has the guard (a generation given as
 * null is removed), each shard in one transaction under FENCE_LOCK (bounded wait, then exit 3 naming
 * the blocker with nothing changed there).
 */
export async function writeRouteRules(fleet: Config, gens: { current?: RouteRule | null; next?: RouteRule | null }, shards = fleet.shards.map((s) => s.id)): Promise<void> {
  await Promise.all(
    shards.map(async (id) => {
      const e = shardEndpoint(fleet, id);
      await withClient(e, async (c) => {
        if (!(await c.query(`SELECT to_regclass('shardctl.route_rules') IS NOT NULL AS ok`)).rows[0].ok) return;
        await withBoundedLocks(c, e, 'recording the routing rule', async () => {
          await c.query(`SELECT pg_advisory_xact_lock(${FENCE_LOCK})`);
          for (const [gen, rule] of Object.entries(gens)) {
            if (rule === undefined) continue;
            await c.query('DELETE FROM shardctl.route_units WHERE gen = $1', [gen]);
            await c.query('DELETE FROM shardctl.route_rules WHERE gen = $1', [gen]);
            if (rule === null) continue;
            await c.query('INSERT INTO shardctl.route_rules (gen, me, kind, shards, default_shard, version) VALUES ($1, $2, $3, $4, $5, $6)', [
              gen, id, rule.kind, rule.shards, rule.defaultShard ?? null, rule.version ?? null,
            ]);
            await c.query('INSERT INTO shardctl.route_units (gen, unit, shard) SELECT $1, * FROM unnest($2::text[], $3::text[])', [gen, [...rule.units.keys()], [...rule.units.values()]]);
          }
          // a key change: a REPEATABLE READ / SERIALIZABLE writer whose snapshot predates this rule fails with 40001 (fence/unit-guard.ts)
          await c.query('UPDATE shardctl.fence_epoch SET epoch = epoch + 1');
        });
      });
    }),
  );
}

/**
 * A move flipped `unit` onto this shard (`here`): every generation routes it here from now on, written
 * before the shard lifts the unit's target fence (the fence refuses its writes until then, so no lock
 * is needed). The old shard keeps refusing it by its `moved` fence.
 */
export async function routeHere(c: pg.ClientBase, unit: string, here: string): Promise<void> {
  if (!(await c.query(`SELECT to_regclass('shardctl.route_rules') IS NOT NULL AS ok`)).rows[0].ok) return;
  await c.query(
    `INSERT INTO shardctl.route_units (gen, unit, shard) SELECT gen, $1, $2 FROM shardctl.route_rules
     ON CONFLICT (gen, unit) DO UPDATE SET shard = EXCLUDED.shard`,
    [unit, here],
  );
}
