import type pg from 'pg';
import { cellToBoundary } from 'h3-js';
import type { Config } from '../config/types.js';
import { quoteIdent, quoteTable } from '../db/ident.js';
import type { Model, TableModel } from '../tables/model.js';
import { parentCellSql, qualifiedName } from '../tables/scope.js';
import { withTransaction } from '../db/connect.js';

/**
 * The fence: while a unit moves, writes to its rows must fail on both shards, and after the move
 * the old shard keeps refusing them, so an application router that is ahead (or behind) of the
 * topology can never write into a copy that is not the live one. Other units keep taking writes.
 *
 * On each shard shardctl installs:
 *   shardctl.fenced_units   the fenced units (and, for lat/lng tables, a bounding box per cell)
 *   shardctl.key_<table>()  the unit of a row of <table>, following via parents
 *   a BEFORE INSERT/UPDATE/DELETE trigger per sharded table that refuses writes to fenced units.
 * Writers hold a shared advisory lock for their transaction; fencing takes it exclusively, so the
 * fence waits for in-flight writers and no write that passed the check can commit after the copy.
 * shardctl's own sessions set shardctl.bypass (src/db/session.ts) and pass.
 */
export const FENCE_LOCK = 0x53_68_61_72_64_46n; // "ShardF"

export type FenceRole = 'source' | 'target' | 'moved';

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
    // roles: source, target, moved (a move), read-only (a cell's capacity status, read-only.ts)
    `ALTER TABLE shardctl.fenced_units DROP CONSTRAINT IF EXISTS fenced_units_role_check`,
    `DO $$ BEGIN
       CREATE TYPE shardctl.fence_key AS (unit text, lat double precision, lng double precision);
     EXCEPTION WHEN duplicate_object THEN NULL; END $$`,
    `CREATE OR REPLACE FUNCTION shardctl.refuse(k shardctl.fence_key) RETURNS void LANGUAGE plpgsql AS $$
     DECLARE f shardctl.fenced_units;
     BEGIN
       SELECT * INTO f FROM shardctl.fenced_units x
        WHERE x.unit = k.unit
           OR (k.lat IS NOT NULL AND x.min_lat IS NOT NULL AND k.lat BETWEEN x.min_lat AND x.max_lat AND k.lng BETWEEN x.min_lng AND x.max_lng)
        LIMIT 1;
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
  ];
  const st = model.config.strategy;
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
    out.push(`CREATE OR REPLACE FUNCTION ${fn}(${quoteTable(t.name)}) RETURNS shardctl.fence_key LANGUAGE sql STABLE AS ${dollar(body)}`);
    const trig = `shardctl.${quoteIdent(`fence_${t.name}`)}`;
    out.push(`CREATE OR REPLACE FUNCTION ${trig}() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF current_setting('shardctl.bypass', true) = 'on' THEN RETURN COALESCE(NEW, OLD); END IF;
        PERFORM pg_advisory_xact_lock_shared(${FENCE_LOCK});
        IF EXISTS (SELECT 1 FROM shardctl.fenced_units) THEN
          IF TG_OP <> 'DELETE' THEN PERFORM shardctl.refuse(${fn}(NEW)); END IF;
          IF TG_OP <> 'INSERT' THEN PERFORM shardctl.refuse(${fn}(OLD)); END IF;
        END IF;
        RETURN COALESCE(NEW, OLD);
      END $$`);
    out.push(`DROP TRIGGER IF EXISTS shardctl_fence ON ${quoteTable(t.name)}`);
    out.push(`CREATE TRIGGER shardctl_fence BEFORE INSERT OR UPDATE OR DELETE ON ${quoteTable(t.name)} FOR EACH ROW EXECUTE FUNCTION ${trig}()`);
  }
  return out;
}

/** Installs (or refreshes) the guard on a shard, in one transaction. */
export async function installGuard(c: pg.ClientBase, model: Model): Promise<void> {
  await withTransaction(c, async () => {
    // one installer at a time per shard (CREATE OR REPLACE races otherwise)
    await c.query(`SELECT pg_advisory_xact_lock(${FENCE_LOCK + 1n})`);
    for (const s of guardSql(model)) await c.query(s);
  });
}

/** Fences a unit on a shard, after every in-flight writer on that shard has finished. Idempotent. */
export async function fence(c: pg.ClientBase, config: Config, unit: string, from: string, to: string, role: FenceRole): Promise<void> {
  const box = config.strategy.kind === 'h3' && hasLatLng(config) ? cellBox(unit) : undefined;
  await withTransaction(c, async () => {
    await c.query(`SELECT pg_advisory_xact_lock(${FENCE_LOCK})`);
    await c.query(
      `INSERT INTO shardctl.fenced_units (unit, from_shard, to_shard, role, min_lat, max_lat, min_lng, max_lng)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
       ON CONFLICT (unit) DO UPDATE SET from_shard = EXCLUDED.from_shard, to_shard = EXCLUDED.to_shard, role = EXCLUDED.role,
         min_lat = EXCLUDED.min_lat, max_lat = EXCLUDED.max_lat, min_lng = EXCLUDED.min_lng, max_lng = EXCLUDED.max_lng, since = now()`,
      [unit, from, to, role, box?.minLat ?? null, box?.maxLat ?? null, box?.minLng ?? null, box?.maxLng ?? null],
    );
  });
}

export async function liftFence(c: pg.ClientBase, unit: string): Promise<void> {
  await c.query('DELETE FROM shardctl.fenced_units WHERE unit = $1', [unit]);
}

const keyFunction = (t: TableModel) => `shardctl.${quoteIdent(`key_${qualifiedName(t.config)}`)}`;
const dollar = (body: string) => `$f$${body}$f$`;
const hasLatLng = (config: Config) => config.tables.some((t) => t.route.kind === 'latlng');

/**
 * A lat/lng box that holds every point whose resolution-12 parent is `cell`. Descendants of an H3
 * cell spill slightly past its own edges (aperture-7 children do not tile the parent exactly), so the
 * box is widened by about one resolution-4 cell; fencing a few neighbouring points during a move is
 * safe, missing one would not be.
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

