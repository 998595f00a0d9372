import type pg from 'pg';
import { connect, type Endpoint } from '../db/connect.js';
import { freshSessions, type Sessions } from '../db/sessions.js';
import { prepareCells, rootTables } from '../unit-copy/inventory.js';
import type { Model, TableModel } from '../tables/model.js';
import { cellTempName } from '../tables/cells.js';
import { quoteTable } from '../db/ident.js';
import { scopeOf } from '../tables/scope.js';

/**
 * Units whose rows a shard holds although they neither route there nor are placed there: copying
 * next to them would leave a unit on two shards. Returns one message per table at fault, and when
 * `present` is given, calls it with every unit found on the shard. The scan runs on a session of
 * `sessions`. A lat/lng table's units are its rows' cells, computed through a reader of the shard
 * into temporary tables of that session (dropped afterwards); an empty lat/lng table (a first
 * migration) holds no unit and needs neither.
 */
export async function foreignRows(
  model: Model,
  shard: string,
  target: Endpoint,
  belongsHere: (unit: string) => boolean,
  present?: (unit: string) => void,
  sessions: Sessions = freshSessions,
): Promise<string[]> {
  return sessions.use(target, async (session) => {
    if (!model.cellSpecs.length) return scan(session, model, shard, belongsHere, present);
    const simple = !model.sharded.some((t) => t.config.routes);
    if (simple && (await allEmpty(session, model.cellSpecs.map((c) => c.table)))) {
      return scan(session, model, shard, belongsHere, present, (t) => t.config.route.kind !== 'latlng');
    }
    const reader = await connect(target);
    try {
      await prepareCells(session, reader, model);
    } finally {
      await reader.end().catch(() => undefined);
    }
    const found = await scan(session, model, shard, belongsHere, present);
    // (a failure above closes the session with its temporary tables: see Sessions.use)
    for (const c of model.cellSpecs) await session.query(`DROP TABLE IF EXISTS ${cellTempName(c.table)}`);
    return found;
  });
}

async function allEmpty(session: pg.ClientBase, tables: readonly string[]): Promise<boolean> {
  const r = await session.query<{ any: boolean }>(`SELECT ${tables.map((t) => `EXISTS (SELECT 1 FROM ${quoteTable(t)})`).join(' OR ')} AS any`);
  return !r.rows[0]!.any;
}

async function scan(
  session: pg.ClientBase,
  model: Model,
  shard: string,
  belongsHere: (unit: string) => boolean,
  present?: (unit: string) => void,
  only: (t: TableModel) => boolean = () => true,
): Promise<string[]> {
  const out: string[] = [];
  for (const t of rootTables(model).filter(only)) {
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
