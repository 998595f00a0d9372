import type pg from 'pg';
import { connect, type Endpoint } from '../db/connect.js';
import { prepareCells, rootTables } from '../transfer/inventory.js';
import type { Model } from '../tables/model.js';
import { scopeOf } from '../tables/scope.js';

/**
 * Units whose rows a shard holds although they neither route there nor are placed there: copying
 * next to them would leave a unit on two shards. Returns one message per table at fault, and when
 * `present` is given, adds every unit found on the shard to it.
 */
export async function foreignRows(
  model: Model,
  shard: string,
  target: Endpoint,
  belongsHere: (unit: string) => boolean,
  present?: Set<string>,
): Promise<string[]> {
  const session = await connect(target);
  let reader: pg.Client | undefined;
  try {
    if (model.cellSpecs.length) {
      reader = await connect(target);
      await prepareCells(session, reader, model);
    }
    const out: string[] = [];
    for (const t of rootTables(model)) {
      const s = scopeOf(model.ctx, t.config);
      const r = await session.query<{ unit: string }>(`SELECT DISTINCT ${s.unit} AS unit FROM ${s.from} WHERE ${s.filter}`);
      if (present) for (const x of r.rows) present.add(x.unit);
      const foreign = r.rows.map((x) => x.unit).filter((u) => !belongsHere(u));
      if (foreign.length) {
        const sample = foreign.slice(0, 5).join(', ') + (foreign.length > 5 ? ', …' : '');
        out.push(`shard ${shard}: table ${t.name} already holds rows of ${foreign.length} unit(s) that route to other shards (${sample})`);
      }
    }
    return out;
  } finally {
    await Promise.all([session.end().catch(() => undefined), reader?.end().catch(() => undefined)]);
  }
}
