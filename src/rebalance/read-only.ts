import type { Config } from '../config/types.js';
import { withClient } from '../db/connect.js';
import { withBoundedLocks } from '../db/lock-wait.js';
import { shardEndpoint } from '../db/endpoints.js';
import { loadModel, type Model } from '../tables/model.js';
import { restrictedCells } from '../config/capacity.js';
import { cellBox, installGuard } from '../fence/unit-guard.js';
import { FENCE_LOCK } from '../catalog/locks.js';

export interface ReadOnlyResult {
  shard: string;
  /** read-only cells fenced on this shard */
  cells: number;
  /** read-only marks lifted (the cell is no longer read-only) */
  lifted: number;
}

/**
 * Makes the config's `read-only` cells refuse writes: on every shard, each such cell gets a fence
 * of role `read-only` (guard.ts raises "cell … is read-only"), and cells no longer read-only lose
 * theirs. On every shard, not only the cell's own: a stale application router must not write the
 * cell elsewhere either. A cell fenced for a move keeps that fence (it refuses writes too); rebalance
 * applies the marks again after its moves. Shards without a guard and without read-only cells are
 * left untouched.
 */
export async function applyReadOnly(config: Config, model?: Model): Promise<ReadOnlyResult[]> {
  if (config.strategy.kind !== 'h3') return [];
  const first = config.shards[0]!.id;
  const m = model ?? (await withClient(shardEndpoint(config, first), (c) => loadModel(config, c, `shard ${first}`)));
  const cells = restrictedCells(config).filter((c) => c.status === 'read-only');
  const boxes = config.tables.some((t) => t.route.kind === 'latlng');
  return Promise.all(
    config.shards.map((s) =>
      withClient(shardEndpoint(config, s.id), async (c) => {
        const e = shardEndpoint(config, s.id);
        const guarded = (await c.query(`SELECT to_regclass('shardctl.fenced_units') IS NOT NULL AS ok`)).rows[0].ok;
        if (!guarded && !cells.length) return { shard: s.id, cells: 0, lifted: 0 };
        await installGuard(c, e, m);
        return withBoundedLocks(c, e, 'marking read-only cells', async () => {
          // exclusive: waits for writers in flight, as any fence change does
          await c.query(`SELECT pg_advisory_xact_lock(${FENCE_LOCK})`);
          const lifted = await c.query(`DELETE FROM shardctl.fenced_units WHERE role = 'read-only' AND NOT (unit = ANY($1::text[]))`, [cells.map((x) => x.cell)]);
          for (const cell of cells) {
            const box = boxes ? cellBox(cell.cell) : undefined;
            await c.query(
              `INSERT INTO shardctl.fenced_units (unit, from_shard, to_shard, role, min_lat, max_lat, min_lng, max_lng)
               VALUES ($1, $2, $2, 'read-only', $3, $4, $5, $6) ON CONFLICT (unit) DO NOTHING`,
              [cell.cell, cell.shard, box?.minLat ?? null, box?.maxLat ?? null, box?.minLng ?? null, box?.maxLng ?? null],
            );
          }
          // a fence change: snapshots older than it fail to write (fence/unit-guard.ts)
          await c.query('UPDATE shardctl.fence_epoch SET epoch = epoch + 1');
          return { shard: s.id, cells: cells.length, lifted: lifted.rowCount ?? 0 };
        });
      }),
    ),
  );
}
