import { createHash } from 'node:crypto';
import { FENCE_LOCK, GUARD_INSTALL_LOCK } from '../catalog/locks.js';
import type pg from 'pg';
import { cellToBoundary } from 'h3-js';
import type { Config } from '../config/types.js';
import type { Endpoint } from '../db/connect.js';
import { dollarQuote, quoteIdent, quoteTable } from '../db/ident.js';
import { withBoundedLocks, type LockWaitOptions } from '../db/lock-wait.js';
import type { Model, TableModel } from '../tables/model.js';
import { parentCellSql, qualifiedName } from '../tables/scope.js';
import { h3Sql } from '../cells/h3-sql.js';
import { routeGuardSql } from './route-guard.js';
import { guardTriggersSql, keyFunction, SKIP_NO_ROWS, statementCheckSql } from './set-guard.js';

/**
 * The fence: while a unit moves, writes to its rows must fail on both shards, and after the move
 * the old shard keeps refusing them, so an application router that is ahead (or behind) of the
 * topology can never write into a copy that is not the live one. Other units keep taking writes.
 *
 * On each shard shardctl installs (the "guard"):
 *   shardctl.fenced_units   the fenced units (and, for lat/lng tables, a bounding box per cell)
 *   shardctl.h3_cell()      H3's latLngToCell in SQL (cells/h3-sql.ts): a lat/lng row is fenced by
 *                           its exact shard cell, the box only spares the computation far away
 *   shardctl.fence_epoch    one row whose key every fence change updates (see below)
 *   shardctl.key_<table>()  the unit of a row of <table>, following via parents
 *   triggers per sharded table (COPY fires them too) that refuse writes to fenced units, checking
 *   both the old and the new rows of an UPDATE: on a plain table AFTER … FOR EACH STATEMENT
 *   triggers that check a statement's distinct units at once from its transition tables
 *   (set-guard.ts); on a partitioned table a BEFORE … FOR EACH ROW trigger, which checks an
 *   UPDATE's new row only when it changes the columns naming its units (otherwise it is the old
 *   one's unit).
 * What it costs a write: `npm run bench -- --fixture guards`; what it runs per statement:
 * test/guard-calls.test.ts (the gate once per transaction, no check per row).
 *
 * Why it holds for every isolation level (unit-fence.ts is the other side):
 *  - Writers take a shared advisory lock (FENCE_LOCK) for their transaction; a fence change takes
 *    it exclusively, so it waits for every writer that already passed the check, and a writer
 *    arriving meanwhile waits until the fence change has committed.
 *  - READ COMMITTED: the trigger's queries run after that lock, each with a fresh snapshot, so
 *    they see the fence.
 *  - REPEATABLE READ / SERIALIZABLE: the transaction's snapshot may predate the fence and would
 *    not see it. So the trigger locks the fence_epoch row FOR KEY SHARE once per transaction; a
 *    fence change updates that row's key, and PostgreSQL refuses to lock a row version that a
 *    transaction invisible to the snapshot has updated: the writer fails with SQLSTATE 40001
 *    (could not serialize access), which such applications retry anyway; the retry's snapshot
 *    sees the fence. A snapshot older than the guard itself finds no epoch row at all and fails
 *    the same way; so that no such snapshot meets a fence, the guard is installed when a shard
 *    joins the fleet (migrate, add-shard), not by its first move.
 *  - Replication-role sessions (session_replication_role = replica) skip ordinary triggers: the
 *    fence triggers are ENABLE ALWAYS.
 *  - Partitions: a row trigger on a partitioned table is cloned onto every partition, present and
 *    attached later (its ENABLE ALWAYS too), so a write naming a partition meets it as well
 *    (test/fence-seams.test.ts holds this, a partition with its own column order included); a
 *    statement trigger would not (set-guard.ts), so partitioned tables keep the row trigger.
 *  - A statement trigger runs after its statement's rows are written, and takes the gate then: a
 *    fence change meanwhile is waited for (or, under a snapshot older than it, fails with 40001)
 *    before any check, and a refusal undoes the statement, so nothing it refuses commits.
 * shardctl's own sessions set shardctl.bypass (src/db/session.ts) and pass (any session can set
 * it: the fence guards against routing mistakes, not against a session that means to bypass it).
 */

/** Bumped when the guard's shape changes; the revision stored on a shard also hashes the SQL. */
const GUARD_REVISION = 7;

export function guardSql(model: Model): string[] {
  const out = [
    'CREATE SCHEMA IF NOT EXISTS shardctl',
    `CREATE TABLE IF NOT EXISTS shardctl.fenced_units (
       unit       text PRIMARY KEY,
       from_shard text NOT NULL,
       to_shard   text NOT NULL,
       role       text NOT NULL,
       min_lat double precision, max_lat double precision, min_lng double precision, max_lng double precision,
       since      timestamptz NOT NULL DEFAULT now())`,
    // roles (unit-fence.ts FENCE_ROLES) are checked by shardctl: a CHECK here could only grow under an exclusive lock
    `ALTER TABLE shardctl.fenced_units DROP CONSTRAINT IF EXISTS fenced_units_role_check`,
    `CREATE TABLE IF NOT EXISTS shardctl.fence_epoch (epoch bigint PRIMARY KEY)`,
    `INSERT INTO shardctl.fence_epoch SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM shardctl.fence_epoch)`,
    `CREATE TABLE IF NOT EXISTS shardctl.guard (id int PRIMARY KEY CHECK (id = 1), revision text NOT NULL)`,
    `DO $$ BEGIN
       CREATE TYPE shardctl.fence_key AS (unit text, lat double precision, lng double precision);
     EXCEPTION WHEN duplicate_object THEN NULL; END $$`,
    `CREATE OR REPLACE FUNCTION shardctl.refuse(k shardctl.fence_key) RETURNS void LANGUAGE plpgsql AS $$
     DECLARE f shardctl.fenced_units; fenced text := k.unit;
     BEGIN
       IF k.lat IS NOT NULL THEN
         -- a point: the boxes are a cheap filter, the point's own shard cell decides (exact)
         IF NOT EXISTS (SELECT 1 FROM shardctl.fenced_units x WHERE x.min_lat IS NOT NULL
                         AND k.lat BETWEEN x.min_lat AND x.max_lat AND k.lng BETWEEN x.min_lng AND x.max_lng) THEN
           RETURN;
         END IF;
         fenced := shardctl.point_cell(k.lat, k.lng);
       END IF;
       SELECT * INTO f FROM shardctl.fenced_units x WHERE x.unit = fenced;
       IF NOT FOUND THEN RETURN; END IF;
       IF f.role = 'read-only' THEN
         RAISE EXCEPTION 'shardctl: cell % is read-only (capacity_status); writes to it are refused', f.unit
           USING ERRCODE = '25006', HINT = 'make it writable with: shardctl mapping set ' || f.unit || ' ' || f.to_shard || ' --status active';
       END IF;
       IF f.role = 'moved' THEN
         RAISE EXCEPTION 'shardctl: unit % has moved to shard % (from %); write to it there', f.unit, f.to_shard, f.from_shard
           USING ERRCODE = '55000', HINT = 'reload the shard topology of the application router';
       END IF;
       RAISE EXCEPTION 'shardctl: unit % is being moved from shard % to shard %; writes to it are refused until the move completes', f.unit, f.from_shard, f.to_shard
         USING ERRCODE = '55000', HINT = 'retry after the move (shardctl rebalance)';
     END $$`,
    // Once per transaction (the setting is transaction-local): wait out a fence change in flight,
    // and under a snapshot-per-transaction level fail with 40001 if a fence changed after the snapshot.
    // The setting also keeps, for the rest of the transaction, whether any unit is fenced and whether
    // routes are checked: both change only under FENCE_LOCK taken exclusively (unit-fence.ts,
    // read-only.ts, route-guard.ts), which this transaction now holds shared, so they cannot change
    // before it ends (a fence lifted meanwhile only makes the per-row check find nothing). The value
    // is 'passed:' and the flags: a transaction that passed an older guard's gate ('passed') while
    // this one was installed passes this gate again rather than writing unchecked.
    `CREATE OR REPLACE FUNCTION shardctl.fence_gate() RETURNS void LANGUAGE plpgsql AS $$
     BEGIN
       IF current_setting('shardctl.fence_gate', true) LIKE 'passed:%' THEN RETURN; END IF;
       PERFORM pg_advisory_xact_lock_shared(${FENCE_LOCK});
       IF current_setting('transaction_isolation') <> 'read committed' THEN
         PERFORM 1 FROM shardctl.fence_epoch FOR KEY SHARE;
         -- no row: the guard came after this snapshot, so a fence may have too (it must never pass then)
         IF NOT FOUND THEN
           RAISE EXCEPTION 'shardctl: the write fence was installed on this shard after this transaction took its snapshot'
             USING ERRCODE = '40001', HINT = 'retry the transaction';
         END IF;
       END IF;
       PERFORM set_config('shardctl.fence_gate', 'passed:'
         || CASE WHEN EXISTS (SELECT 1 FROM shardctl.fenced_units) THEN ' fenced' ELSE '' END
         || CASE WHEN EXISTS (SELECT 1 FROM shardctl.route_rules) THEN ' routed' ELSE '' END, true);
     END $$`,
  ];
  // the route guard (route-guard.ts): a unit's rows are taken only where the catalog routes it
  out.push(...routeGuardSql());
  const st = model.config.strategy;
  if (st.kind === 'h3' && hasLatLng(model.config)) {
    // the shard cell of a point, by the routing rule (index resolution, then the parent): cells.ts shardCell
    out.push(...h3Sql());
    out.push(`CREATE OR REPLACE FUNCTION shardctl.point_cell(lat float8, lng float8) RETURNS text LANGUAGE sql IMMUTABLE STRICT AS
      $$ SELECT ${parentCellSql(`shardctl.h3_cell(lat, lng, ${st.indexResolution})`, st.shardResolution)} $$`);
  }
  for (const t of model.sharded) {
    const fn = keyFunction(t);
    const r = t.config.route;
    let body: string;
    if (r.kind === 'key') body = `SELECT ROW(($1).${quoteIdent(r.column)}::text, NULL, NULL)::shardctl.fence_key`;
    else if (r.kind === 'cell') {
      if (st.kind !== 'h3') throw new Error('internal: cell route without h3');
      body = `SELECT ROW(${parentCellSql(`($1).${quoteIdent(r.column)}`, st.shardResolution)}, NULL, NULL)::shardctl.fence_key`;
    } else if (r.kind === 'latlng') body = `SELECT ROW(NULL, ($1).${quoteIdent(r.lat)}, ($1).${quoteIdent(r.lng)})::shardctl.fence_key`;
    else if (r.kind === 'via') {
      const parent = model.table(r.parent);
      body = `SELECT ${keyFunction(parent)}(p) FROM ${quoteTable(parent.name)} p WHERE p.${quoteIdent(r.parentColumn)} = ($1).${quoteIdent(r.column)}`;
    } else continue;
    out.push(`CREATE OR REPLACE FUNCTION ${fn}(${quoteTable(t.name)}) RETURNS shardctl.fence_key LANGUAGE sql STABLE AS ${dollarQuote(body)}`);
    // a table with several routes: a row is fenced when any of its units is (one key function per route)
    const fns = [fn];
    for (const [i, route] of (t.config.routes ?? []).entries()) {
      if (i === 0) continue;
      const extra = `shardctl.${quoteIdent(`key_${qualifiedName(t.config)}#${i + 1}`)}`;
      const unit = route.kind === 'key' ? `($1).${quoteIdent(route.column)}::text` : route.kind === 'cell' && st.kind === 'h3' ? parentCellSql(`($1).${quoteIdent(route.column)}`, st.shardResolution) : undefined;
      if (!unit) throw new Error(`internal: table ${t.name}: route ${i + 1} cannot be fenced`);
      out.push(`CREATE OR REPLACE FUNCTION ${extra}(${quoteTable(t.name)}) RETURNS shardctl.fence_key LANGUAGE sql STABLE AS ${dollarQuote(`SELECT ROW(${unit}, NULL, NULL)::shardctl.fence_key`)}`);
      fns.push(extra);
    }
    const refuseAll = (rec: string) => fns.map((f) => `PERFORM shardctl.refuse(${f}(${rec}));`).join(' ');
    const trig = `shardctl.${quoteIdent(`fence_${t.name}`)}`;
    // an UPDATE that keeps the columns naming the row's units keeps its units: OLD's check covers NEW's
    const same = keptUnitSql(t);
    // a row that names its unit itself (not through a parent, one route) can create a unit: it must be
    // routed here (route-guard.ts); an UPDATE is checked only when it changes the row's unit
    const unitOf = r.kind === 'latlng' ? 'shardctl.point_cell(k.lat, k.lng)' : 'k.unit';
    const routeCheck = r.kind === 'via' || t.config.routes ? '' : `
        IF TG_OP <> 'DELETE' AND g LIKE '%routed%' AND NOT kept THEN
          k := ${fn}(NEW);
          PERFORM shardctl.route_check(${unitOf});
        END IF;`;
    // one function for both trigger levels (set-guard.ts): a plain table's statement triggers, a
    // partitioned table's row trigger
    const trigBody = `
      DECLARE k shardctl.fence_key; g text := current_setting('shardctl.fence_gate', true); kept bool; u text; cells text[];
      BEGIN
        IF current_setting('shardctl.bypass', true) = 'on' THEN RETURN COALESCE(NEW, OLD); END IF;
        IF TG_LEVEL = 'STATEMENT' THEN
          ${SKIP_NO_ROWS}
        END IF;
        IF g IS NULL OR g NOT LIKE 'passed:%' THEN
          PERFORM shardctl.fence_gate();
          g := current_setting('shardctl.fence_gate');
        END IF;
        IF TG_LEVEL = 'STATEMENT' THEN${statementCheckSql(model, t)}
        END IF;
        kept := TG_OP = 'UPDATE' AND ${same};
        IF g LIKE '%fenced%' THEN
          IF TG_OP <> 'DELETE' AND NOT kept THEN ${refuseAll('NEW')} END IF;
          IF TG_OP <> 'INSERT' THEN ${refuseAll('OLD')} END IF;
        END IF;${routeCheck}
        RETURN COALESCE(NEW, OLD);
      END`;
    out.push(`CREATE OR REPLACE FUNCTION ${trig}() RETURNS trigger LANGUAGE plpgsql AS ${dollarQuote(trigBody)}`);
    out.push(guardTriggersSql(t.name, trig, model.sharded.map((x) => x.name)));
  }
  return out;
}

/**
 * Installs (or refreshes) the guard on a shard in one transaction with bounded lock waits (the
 * trigger DDL locks each table against writes). A shard whose guard is current is left alone: no
 * DDL, no lock.
 */
export async function installGuard(c: pg.Client, endpoint: Endpoint, model: Model, opts: LockWaitOptions = {}): Promise<void> {
  const statements = guardSql(model);
  const revision = `${GUARD_REVISION}:${createHash('sha256').update(statements.join(';\n')).digest('hex')}`;
  const installed = await c.query(`SELECT to_regclass('shardctl.guard') IS NOT NULL AS ok`);
  if (installed.rows[0].ok) {
    const r = await c.query('SELECT revision FROM shardctl.guard WHERE id = 1');
    if (r.rows[0]?.revision === revision) return;
  }
  await withBoundedLocks(c, endpoint, 'installing the write fence', async () => {
    // one installer at a time per shard (CREATE OR REPLACE races otherwise)
    await c.query(`SELECT pg_advisory_xact_lock(${GUARD_INSTALL_LOCK})`);
    for (const s of statements) await c.query(s);
    await c.query('INSERT INTO shardctl.guard (id, revision) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET revision = EXCLUDED.revision', [revision]);
  }, opts);
}

/**
 * Whether an UPDATE keeps the values `t`'s rows name their units by (every route's columns, a via
 * table's parent key), as exactly as the key functions can tell: the same text byte for byte (a
 * key's unit is its text; a cell's and a via parent's lookup follow its value), a lat/lng column the
 * same double bit for bit (-0 and 0 compare equal but are different points; no text form, which
 * extra_float_digits can shorten).
 */
function keptUnitSql(t: TableModel): string {
  const text = (c: string) => `NEW.${quoteIdent(c)}::text COLLATE "C" IS NOT DISTINCT FROM OLD.${quoteIdent(c)}::text COLLATE "C"`;
  const float = (c: string) => `float8send(NEW.${quoteIdent(c)}::float8) IS NOT DISTINCT FROM float8send(OLD.${quoteIdent(c)}::float8)`;
  const of = (r: TableModel['config']['route']): string[] =>
    r.kind === 'key' || r.kind === 'cell' || r.kind === 'via' ? [text(r.column)] : r.kind === 'latlng' ? [float(r.lat), float(r.lng)] : ['false'];
  return [...new Set([of(t.config.route), ...(t.config.routes ?? []).map(of)].flat())].map((x) => `(${x})`).join(' AND ');
}

export const hasLatLng = (config: Config) => config.tables.some((t) => t.route.kind === 'latlng');

/**
 * A lat/lng box that holds every point whose resolution-12 parent is `cell`. Descendants of an H3
 * cell spill slightly past its own edges (aperture-7 children do not tile the parent exactly), so the
 * box is widened by about one resolution-4 cell. It only filters: a point inside it is fenced when its
 * own shard cell (shardctl.point_cell) is the fenced one, so neighbouring cells stay writable.
 */
export function cellBox(cell: string): { minLat: number; maxLat: number; minLng: number; maxLng: number } {
  const pts = cellToBoundary(cell);
  const lats = pts.map((p) => p[0]);
  const lngs = pts.map((p) => p[1]);
  const margin = 0.3;
  const minLat = Math.max(-90, Math.min(...lats) - margin);
  const maxLat = Math.min(90, Math.max(...lats) + margin);
  const widen = margin / Math.max(0.05, Math.cos((Math.max(Math.abs(minLat), Math.abs(maxLat)) * Math.PI) / 180));
  let minLng = Math.min(...lngs) - widen;
  let maxLng = Math.max(...lngs) + widen;
  if (maxLng - minLng > 180 || minLng < -180 || maxLng > 180) {
    minLng = -180; // crosses the antimeridian (or a pole): fence the whole band
    maxLng = 180;
  }
  return { minLat, maxLat, minLng, maxLng };
}

