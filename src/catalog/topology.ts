import type pg from 'pg';
import type { Config } from '../config/types.js';
import { redactUrl } from '../redact.js';
import { withTransaction } from '../db/connect.js';

/**
 * Records the topology a mutating run used (shards in order, pins, the H3 mapping) in the catalog,
 * so the audit log shows what routing placed the data. Connection strings are stored redacted.
 */
export async function syncTopology(c: pg.ClientBase, config: Config): Promise<void> {
  await withTransaction(c, async () => {
    await c.query('DELETE FROM shardctl.shards WHERE NOT (id = ANY($1::text[]))', [config.shards.map((s) => s.id)]);
    // positions are unique: clear them first so a reordering never collides midway
    await c.query('UPDATE shardctl.shards SET position = -position - 1');
    for (const [i, s] of config.shards.entries()) {
      await c.query(
        `INSERT INTO shardctl.shards (id, position, primary_url) VALUES ($1, $2, $3)
         ON CONFLICT (id) DO UPDATE SET position = EXCLUDED.position, primary_url = EXCLUDED.primary_url`,
        [s.id, i, redactUrl(s.primary)],
      );
    }
    await c.query('DELETE FROM shardctl.pins');
    await c.query('DELETE FROM shardctl.cell_mapping');
    const st = config.strategy;
    if (st.kind === 'jump') {
      for (const [tenant, shard] of Object.entries(st.pins)) await c.query('INSERT INTO shardctl.pins (tenant, shard) VALUES ($1, $2)', [tenant, shard]);
    } else {
      for (const m of st.mapping) {
        await c.query('INSERT INTO shardctl.cell_mapping (cell, shard, region, capacity_status) VALUES ($1, $2, $3, $4)', [
          m.cell, m.shard, m.region ?? null, m.capacityStatus ?? null,
        ]);
      }
    }
  });
}
