import type pg from 'pg';
import { connect, type Endpoint } from '../db/connect.js';
import { freshSessions, type Sessions } from '../db/sessions.js';
import { prepareCells, rootTables } from '../unit-copy/inventory.js';
import type { Model } from '../tables/model.js';
import { scopeOf } from '../tables/scope.js';

/**
 * Units whose rows a shard holds although they neither route there nor are placed there: copying
 * next to them would leave a unit on two shards. Returns one message per table at fault, and when
 * `present` is given, calls it with every unit found on the shard. The scan runs on a session of
 * `sessions`; with lat/lng tables on connections of its own (their cells go into temporary tables).
 */
export async function foreignRows(
  model: Model,
  shard: string,
  target: Endpoint,
  belongsHere: (unit: string) => boolean,
  present?: (unit: string) => void,
  sessions: Sessions = freshSessions,
): Promise<string[]> {
  if (!model.cellSpecs.length) return sessions.use(target, (session) => scan(session, model, shard, belongsHere, present));
  const session = await connect(target);
  let reader: pg.Client | undefined;
  try {
    reader = await connect(target);
    await prepareCells(session, reader, model);
    return await scan(session, model, shard, belongsHere, present);
  } finally {
    await Promise.all([session.end().catch(() => undefined), reader?.end().catch(() => undefined)]);
  }
}

async function scan(session: pg.ClientBase, model: Model, shard: string, belongsHere: (unit: string) => boolean, present?: (unit: string) => void): Promise<string[]> {
  const out: string[] = [];
  for (const t of rootTables(model)) {
    const s = scopeOf(model.ctx, t.config);
    const r = await session.query<{ unit: string }>(`SELECT DISTINCT ${s.unit} AS unit FROM ${s.from} WHERE ${s.filter}`);
    if (present) for (const x of r.rows) present(x.unit);
    let foreign = r.rows.map((x) => x.unit).filter((u) => !belongsHere(u));
    // several routes: a row is foreign only when none of its units belongs here (a cross-shard row's
    // other unit lives on another shard by design)
    if (foreign.length && s.units) foreign = await allForeign(session, s.rows!, s.units, foreign);
    if (foreign.length) {
      const sample = foreign.slice(0, 5).join(', ') + (foreign.length > 5 ? ', …' : '');
      out.push(`shard ${shard}: table ${t.name} already holds rows of ${foreign.length} unit(s) that route to other shards (${sample})`);
    }
  }
  return out;
}

/** Of `foreign` units, those with rows here whose every unit is foreign (a table with several routes). */
async function allForeign(session: pg.ClientBase, rows: string, units: string, foreign: string[]): Promise<string[]> {
  const r = await session.query<{ unit: string }>(
    `SELECT DISTINCT u AS unit FROM ${rows} CROSS JOIN LATERAL unnest(${units}) AS u
      WHERE u IS NOT NULL AND array_remove(${units}, NULL) <@ $1::text[]`,
    [foreign],
  );
  return r.rows.map((x) => x.unit);
}
