import type { Model, TableModel } from '../tables/model.js';
import type { TableConfig } from '../config/types.js';
import { dollarQuote, quoteIdent, quoteLiteral, quoteTable, textArrayLiteral } from '../db/ident.js';
import { parentCellSql, qualifiedName } from '../tables/scope.js';

/**
 * The guard of a plain sharded table, set-based (issue #26 follow-up): instead of a trigger per row,
 * three AFTER … FOR EACH STATEMENT triggers (INSERT, UPDATE, DELETE: PostgreSQL allows transition
 * tables only on a trigger of one event) read the statement's rows from its transition tables
 * (REFERENCING NEW TABLE / OLD TABLE; COPY and INSERT … ON CONFLICT fill them too) and check them
 * with a few joins, whatever their number:
 *  - fences: the units of the rows (old and new) that shardctl.fenced_units names, or for lat/lng
 *    points the ones inside a fenced box, are handed to shardctl.refuse, which raises the row
 *    guard's own error (exact: the box only filters, refuse computes the point's cell);
 *  - routes (a row naming its unit itself, one route): the distinct units of the new rows that an
 *    UPDATE did not already have among its old rows (those are here already: the row guard skips
 *    an UPDATE keeping its row's unit for the same reason) and that some rule generation routes
 *    elsewhere, by route_check's own rule, are handed to shardctl.route_check, which raises 40001
 *    naming unit and home.
 * An AFTER trigger's error undoes its statement, so no row it refuses is ever seen committed.
 * The gate (fence lock, epoch row) is the row guard's: once per transaction, before any check.
 *
 * Where a statement trigger cannot see the write, the row trigger stays (guardTriggersSql): a
 * partitioned table's statement triggers do not fire for a write naming a partition, and a
 * partition attached later gets no statement trigger; a row trigger on the partitioned table is
 * cloned onto every partition, present and future.
 */

/** The transition tables' names inside the trigger function (an ENR shadows a table of that name). */
const NEW_ROWS = 'shardctl_new';
const OLD_ROWS = 'shardctl_old';

/** The trigger names: the row trigger (partitioned tables) and the statement triggers (plain tables). */
export const ROW_TRIGGER = 'shardctl_fence';
export const STATEMENT_TRIGGERS = { INSERT: 'shardctl_fence_insert', UPDATE: 'shardctl_fence_update', DELETE: 'shardctl_fence_delete' } as const;

/** A trigger fires only for sessions that do not bypass the guard (shardctl's own: db/session.ts). */
const NOT_BYPASSED = `current_setting('shardctl.bypass', true) IS DISTINCT FROM 'on'`;

type Route = TableConfig['route'];

/** Every route of `t` (the first one is `t.config.route`). */
const routesOf = (t: TableModel): Route[] => [t.config.route, ...(t.config.routes ?? []).slice(1)];

/** A lat/lng value as the key functions read it (fence_key's double precision). */
const float = (x: string, c: string) => `${x}.${quoteIdent(c)}::float8`;
/** The same double bit for bit (-0 and 0 are different points). */
const bits = (x: string, c: string) => `float8send(${float(x, c)})`;

/**
 * A SELECT of the fence keys of the rows in `sources` (transition tables) under `r` as three columns (unit, lat, lng: the
 * fields of shardctl.fence_key, not the composite, which every field access would build again), as
 * the row guard's key functions compute them (unit-guard.ts); a lat/lng point once per bit pattern.
 */
function keysSql(model: Model, r: Route, sources: readonly string[]): string {
  if (r.kind === 'latlng') {
    // an UPDATE's old and new points together: a point it keeps is one point, its cell computed once
    const points = sources.map((rows) => `SELECT x.${quoteIdent(r.lat)}, x.${quoteIdent(r.lng)} FROM ${rows} x`).join(' UNION ALL ');
    return `SELECT DISTINCT ON (${bits('x', r.lat)}, ${bits('x', r.lng)}) NULL::text, ${float('x', r.lat)}, ${float('x', r.lng)} FROM (${points}) x`;
  }
  return sources.map((rows) => keySql(model, r, rows)).join(' UNION ALL ');
}

/** keysSql for one transition table and a route naming its unit by a value (a key, a cell, a parent's). */
function keySql(model: Model, r: Route, rows: string): string {
  const st = model.config.strategy;
  const none = 'NULL::float8, NULL::float8';
  if (r.kind === 'key') return `SELECT x.${quoteIdent(r.column)}::text, ${none} FROM ${rows} x`;
  if (r.kind === 'cell') {
    if (st.kind !== 'h3') throw new Error('internal: cell route without h3');
    return `SELECT ${parentCellSql(`x.${quoteIdent(r.column)}`, st.shardResolution)}, ${none} FROM ${rows} x`;
  }
  if (r.kind === 'via') {
    const parent = model.table(r.parent);
    // each parent value once, its rows looked up as the row guard's key function does (OFFSET 0 keeps
    // the lookup a probe per value: a plan cached for a statement of many rows must not scan the
    // whole parent for a statement of one; and the key is computed once, not once per field)
    return `SELECT (q.k).unit, (q.k).lat, (q.k).lng FROM (SELECT DISTINCT x.${quoteIdent(r.column)} AS v FROM ${rows} x) d
              CROSS JOIN LATERAL (SELECT ${keyFunction(parent)}(p) AS k FROM ${quoteTable(parent.name)} p WHERE p.${quoteIdent(r.parentColumn)} = d.v OFFSET 0) q`;
  }
  throw new Error(`internal: a ${r.kind} table has no guard`);
}

/** The row guard's key function of `t` (unit-guard.ts). */
export const keyFunction = (t: TableModel) => `shardctl.${quoteIdent(`key_${qualifiedName(t.config)}`)}`;

/**
 * Whether `unit` is fenced: an index probe per unit, whatever the plan. A PL/pgSQL plan is cached from
 * the first statement of the session, and its estimate of a transition table is that statement's
 * size: an IN (…) or a join planned for one row would scan fenced_units (a tombstone per moved unit)
 * for every row of a large statement, one planned for many rows would hash all of it for a single
 * row. OFFSET 0 keeps the EXISTS a correlated probe (PostgreSQL neither flattens nor hashes it).
 */
const FENCED = (unit: string) => `EXISTS (SELECT 1 FROM shardctl.fenced_units f WHERE f.unit = ${unit} OFFSET 0)`;

/** The keys of `rows` that may be fenced: a fenced unit's, or a point inside a fenced box (refuse decides exactly). */
function fenceCandidatesSql(model: Model, t: TableModel, rows: readonly string[]): string {
  const keys = routesOf(t).map((r) => keysSql(model, r, rows));
  // a FOR loop fills the composite variable k field by field, from these three columns
  return `SELECT s.unit, s.lat, s.lng FROM (${keys.join(' UNION ALL ')}) s(unit, lat, lng)
           WHERE (s.unit IS NOT NULL AND ${FENCED('s.unit')})
              OR (s.lat IS NOT NULL AND EXISTS (SELECT 1 FROM shardctl.fenced_units f WHERE f.min_lat IS NOT NULL
                   AND s.lat BETWEEN f.min_lat AND f.max_lat AND s.lng BETWEEN f.min_lng AND f.max_lng))`;
}

/**
 * One column u: the distinct units the new rows name that must be routed here (for an UPDATE, not
 * among its old rows' units), compared byte for byte (a column's nondeterministic collation must not
 * merge two units).
 */
function newUnitsSql(model: Model, r: Route, update: boolean): string {
  const st = model.config.strategy;
  // each unit once (EXCEPT keeps distinct rows too)
  const notOld = (sel: (x: string) => string) => (update ? `${sel(NEW_ROWS)} EXCEPT ${sel(OLD_ROWS)}` : sel(NEW_ROWS).replace(/^SELECT /, 'SELECT DISTINCT '));
  if (r.kind === 'key') return notOld((rows) => `SELECT x.${quoteIdent(r.column)}::text COLLATE "C" FROM ${rows} x`);
  if (r.kind === 'cell') {
    if (st.kind !== 'h3') throw new Error('internal: cell route without h3');
    return notOld((rows) => `SELECT ${parentCellSql(`x.${quoteIdent(r.column)}`, st.shardResolution)} COLLATE "C" FROM ${rows} x`);
  }
  if (r.kind === 'latlng') {
    // the points first (a point's cell is costly): each bit pattern once (a row is equal to another
    // only when its bits are), an UPDATE's old points left out by EXCEPT (hashed or sorted, never a
    // comparison of every new point with every old one, whatever the cached plan expected)
    const points = (rows: string) => `SELECT ${float('x', r.lat)}, ${float('x', r.lng)}, ${bits('x', r.lat)}, ${bits('x', r.lng)} FROM ${rows} x`;
    return `SELECT DISTINCT shardctl.point_cell(p.lat, p.lng) COLLATE "C" FROM (
              ${update ? `${points(NEW_ROWS)} EXCEPT ${points(OLD_ROWS)}` : points(NEW_ROWS).replace(/^SELECT /, 'SELECT DISTINCT ')}) p(lat, lng)`;
  }
  throw new Error(`internal: a ${r.kind} route is not checked`);
}

/**
 * The units of `units` (column u) that some rule generation routes elsewhere: route_check's rule
 * (route-guard.ts) as a join, so that route_check runs only for a unit it refuses.
 */
const misroutedSql = (units: string) => `SELECT s.u FROM (${units}) s(u) WHERE s.u IS NOT NULL AND EXISTS (
    SELECT 1 FROM shardctl.route_rules r LEFT JOIN shardctl.route_units h ON h.gen = r.gen AND h.unit = (s.u COLLATE "default")
     WHERE COALESCE(h.shard, CASE WHEN r.kind = 'jump' THEN r.shards[shardctl.jump_hash(shardctl.route_key64(s.u), cardinality(r.shards)) + 1]
                                  ELSE r.default_shard END) IS DISTINCT FROM r.me)`;

/**
 * The statement-level part of `t`'s trigger function (PL/pgSQL; its DECLARE has `g text` holding the
 * gate's setting, `k shardctl.fence_key`, `u text` and `cells text[]`), run after the gate; returns NULL.
 */
export function statementCheckSql(model: Model, t: TableModel): string {
  const refuse = (rows: string[]) => `FOR k IN ${fenceCandidatesSql(model, t, rows)} LOOP PERFORM shardctl.refuse(k); END LOOP;`;
  const r = t.config.route;
  const routed = r.kind !== 'via' && !t.config.routes;
  const route = (update: boolean) => (routed ? `IF g LIKE '%routed%' THEN FOR u IN ${misroutedSql(newUnitsSql(model, r, update))} LOOP PERFORM shardctl.route_check(u); END LOOP; END IF;` : '');
  // an INSERT into a lat/lng table whose routes are checked computes each point's cell anyway: the
  // fence check reads those cells (exact) instead of computing the cells of the points in a fenced box again
  const insert = r.kind === 'latlng' && routed
    ? `IF g LIKE '%routed%' THEN
            cells := ARRAY(${newUnitsSql(model, r, false)});
            IF g LIKE '%fenced%' THEN
              FOR k IN SELECT c, NULL::float8, NULL::float8 FROM unnest(cells) c WHERE ${FENCED('c')} LOOP PERFORM shardctl.refuse(k); END LOOP;
            END IF;
            FOR u IN ${misroutedSql('SELECT unnest(cells)')} LOOP PERFORM shardctl.route_check(u); END LOOP;
          ELSIF g LIKE '%fenced%' THEN ${refuse([NEW_ROWS])}
          END IF;`
    : `IF g LIKE '%fenced%' THEN ${refuse([NEW_ROWS])} END IF;
          ${route(false)}`;
  return `
        IF TG_OP = 'INSERT' THEN
          ${insert}
        ELSIF TG_OP = 'UPDATE' THEN
          IF g LIKE '%fenced%' THEN ${refuse([OLD_ROWS, NEW_ROWS])} END IF;
          ${route(true)}
        ELSE
          IF g LIKE '%fenced%' THEN ${refuse([OLD_ROWS])} END IF;
        END IF;
        RETURN NULL;`;
}

/**
 * PL/pgSQL: a statement that wrote no row returns at once (no gate, no lock: nothing to let through).
 * Each branch names only the transition table its trigger has (naming another one fails to plan).
 */
export const SKIP_NO_ROWS = `IF TG_OP = 'DELETE' THEN
            IF NOT EXISTS (SELECT 1 FROM ${OLD_ROWS}) THEN RETURN NULL; END IF;
          ELSIF NOT EXISTS (SELECT 1 FROM ${NEW_ROWS}) THEN RETURN NULL;
          END IF;`;

/**
 * The triggers of `table` calling `fn`, chosen on the shard: the row trigger for a partitioned table
 * (cloned onto every partition, attached later too) and for a table with a foreign key to a sharded
 * table (`sharded`), the statement triggers for any other. A foreign key's check runs before any
 * AFTER statement trigger: a child row written for a unit being moved or gone (its parent not, or no
 * longer, on the shard) would fail as a foreign-key violation (23503) instead of the guard's "being
 * moved" / "has moved to shard …; write to it there", the refusal a router retries or re-routes on;
 * a BEFORE row trigger speaks first. A key to a reference table cannot fail that way (its rows are on
 * every shard). Whatever guard triggers the table had are replaced, never doubled; all are ENABLE
 * ALWAYS (a session with session_replication_role = replica fires them too).
 */
export function guardTriggersSql(table: string, fn: string, sharded: readonly string[]): string {
  const t = quoteTable(table);
  const all = [ROW_TRIGGER, ...Object.values(STATEMENT_TRIGGERS)];
  const drop = all.map((n) => `DROP TRIGGER IF EXISTS ${quoteIdent(n)} ON ${t};`).join('\n    ');
  const always = (n: string) => `ALTER TABLE ${t} ENABLE ALWAYS TRIGGER ${quoteIdent(n)};`;
  const parents = textArrayLiteral(sharded.map(quoteTable));
  const statement = (Object.entries(STATEMENT_TRIGGERS) as [keyof typeof STATEMENT_TRIGGERS, string][]).map(([event, n]) => {
    const referencing = event === 'INSERT' ? `NEW TABLE AS ${NEW_ROWS}` : event === 'UPDATE' ? `OLD TABLE AS ${OLD_ROWS} NEW TABLE AS ${NEW_ROWS}` : `OLD TABLE AS ${OLD_ROWS}`;
    return `CREATE TRIGGER ${quoteIdent(n)} AFTER ${event} ON ${t} REFERENCING ${referencing} FOR EACH STATEMENT
      WHEN (${NOT_BYPASSED}) EXECUTE FUNCTION ${fn}();
    ${always(n)}`;
  });
  const body = `BEGIN
  ${drop}
  IF (SELECT c.relkind FROM pg_class c WHERE c.oid = ${quoteLiteral(t)}::regclass) = 'p'
     OR EXISTS (SELECT 1 FROM pg_constraint k
                 WHERE k.conrelid = ${quoteLiteral(t)}::regclass AND k.contype = 'f'
                   AND coalesce(pg_partition_root(k.confrelid), k.confrelid) IN (SELECT to_regclass(x) FROM unnest(${parents}::text[]) x)) THEN
    -- the WHEN spares shardctl's own apply sessions a function call per row
    CREATE TRIGGER ${quoteIdent(ROW_TRIGGER)} BEFORE INSERT OR UPDATE OR DELETE ON ${t} FOR EACH ROW
      WHEN (${NOT_BYPASSED}) EXECUTE FUNCTION ${fn}();
    ${always(ROW_TRIGGER)}
  ELSE
    ${statement.join('\n    ')}
  END IF;
END`;
  return `DO ${dollarQuote(body)}`;
}
