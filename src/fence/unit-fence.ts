import type pg from 'pg';
import type { Config } from '../config/types.js';
import type { Endpoint } from '../db/connect.js';
import { withBoundedLocks, type LockWaitOptions } from '../db/lock-wait.js';
import { cellBox, hasLatLng } from './unit-guard.js';
import { FENCE_LOCK } from '../catalog/locks.js';

/**
 * The fence API: fence, unfence and read the fenced units of one server that has the guard
 * (unit-guard.ts, `installGuard`). Any server with the guard works: a shard, or the monolith at cutover.
 *
 * Roles:
 *   source / target  the unit is moving from `from` to `to`: writes refused on both
 *   moved            a tombstone on the old shard: writes refused, naming the new shard
 *   read-only        an H3 cell's capacity_status (rebalance/read-only.ts): writes refused
 */
export const FENCE_ROLES = ['source', 'target', 'moved', 'read-only'] as const;
export type FenceRole = (typeof FENCE_ROLES)[number];

export interface Fence {
  readonly unit: string;
  readonly from: string;
  readonly to: string;
  readonly role: FenceRole;
}

/**
 * Fences `fences` on the server, in one transaction. When it returns, every transaction that could
 * still write to one of these units without seeing the fence has ended, and every later write is
 * refused, whatever its isolation level (REPEATABLE READ / SERIALIZABLE transactions whose snapshot
 * predates this call fail with 40001). Waits for writers in flight at most as `opts` allows, then
 * fails with exit 3 naming the blocking session, leaving the fences as they were. Idempotent.
 *
 * @example await fenceUnits(client, endpoint, config, [{ unit: '42', from: 's0', to: 's1', role: 'source' }]);
 */
export async function fenceUnits(c: pg.Client, endpoint: Endpoint, config: Config, fences: readonly Fence[], opts: LockWaitOptions = {}): Promise<void> {
  if (!fences.length) return;
  for (const f of fences) if (!FENCE_ROLES.includes(f.role)) throw new Error(`internal: unknown fence role ${f.role}`);
  const boxes = config.strategy.kind === 'h3' && hasLatLng(config);
  await withBoundedLocks(c, endpoint, `fencing ${describeUnits(fences.map((f) => f.unit))}`, async () => {
    await c.query(`SELECT pg_advisory_xact_lock(${FENCE_LOCK})`);
    for (const f of fences) {
      const box = boxes ? cellBox(f.unit) : undefined;
      await c.query(
        `INSERT INTO shardctl.fenced_units (unit, from_shard, to_shard, role, min_lat, max_lat, min_lng, max_lng)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (unit) DO UPDATE SET from_shard = EXCLUDED.from_shard, to_shard = EXCLUDED.to_shard, role = EXCLUDED.role,
           min_lat = EXCLUDED.min_lat, max_lat = EXCLUDED.max_lat, min_lng = EXCLUDED.min_lng, max_lng = EXCLUDED.max_lng, since = now()`,
        [f.unit, f.from, f.to, f.role, box?.minLat ?? null, box?.maxLat ?? null, box?.minLng ?? null, box?.maxLng ?? null],
      );
    }
    // A key change: any older snapshot's FOR KEY SHARE of this row now fails (unit-guard.ts).
    await c.query('UPDATE shardctl.fence_epoch SET epoch = epoch + 1');
  }, opts);
}

/**
 * Lifts the fences of `units` on the server (absent ones are ignored). Lifting needs no wait: a
 * writer that still sees the fence is refused, which is safe.
 */
export async function unfenceUnits(c: pg.ClientBase, units: readonly string[]): Promise<void> {
  if (!units.length) return;
  const exists = await c.query(`SELECT to_regclass('shardctl.fenced_units') IS NOT NULL AS ok`);
  if (!exists.rows[0].ok) return;
  await c.query('DELETE FROM shardctl.fenced_units WHERE unit = ANY($1::text[])', [units]);
}

/** The fences on the server (none when it has no guard), by unit. */
export async function readFences(c: pg.ClientBase): Promise<Map<string, Fence>> {
  const exists = await c.query(`SELECT to_regclass('shardctl.fenced_units') IS NOT NULL AS ok`);
  if (!exists.rows[0].ok) return new Map();
  const r = await c.query<{ unit: string; from_shard: string; to_shard: string; role: FenceRole }>(
    'SELECT unit, from_shard, to_shard, role FROM shardctl.fenced_units ORDER BY unit',
  );
  return new Map(r.rows.map((x) => [x.unit, { unit: x.unit, from: x.from_shard, to: x.to_shard, role: x.role }]));
}

/** `unit 42`, or `3 units (1, 2, 3)`, for messages. */
export const describeUnits = (units: readonly string[]): string =>
  units.length === 1 ? `unit ${units[0]}` : `${units.length} units (${units.slice(0, 3).join(', ')}${units.length > 3 ? ', …' : ''})`;
