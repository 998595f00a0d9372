import type pg from 'pg';
import { connect, endpointName, type Endpoint } from '../db/connect.js';
import { quoteTable } from '../db/ident.js';
import { describePgError } from '../db/pg-error.js';
import { isUserError } from '../errors.js';
import { redactText } from '../redact.js';
import { materializeCells } from '../tables/cells.js';
import { tableChecksumSql, unitChecksumSql } from '../tables/checksum.js';
import type { RowHash } from '../tables/row-hash.js';
import { discountCopies, readCrossRows, type CrossRow } from '../multi-route/cross-shard-rows.js';
import { compareTables } from '../tables/drift.js';
import { introspect, type TableInfo } from '../tables/introspect.js';
import { h3Strategy, type Model, type TableModel } from '../tables/model.js';
import { qualifiedName, routeChain, scopeOf, type Scope } from '../tables/scope.js';

/** A row count and checksum (of a unit's rows in a table, or of a whole table). */
export interface Sums {
  rows: number;
  /** exact sum of the rows' 64-bit md5 slices, as decimal text */
  checksum: string;
}

/** Progress of a scan: a table read on a server, then the server done (or failed). */
export type ScanEvent =
  | { type: 'table'; server: string; table: string; rows: number; units: number; seconds: number }
  | { type: 'server'; server: string; seconds: number; error?: string };

/** What one server holds of the selected tables, as counts and checksums computed on the server. */
export interface ServerScan {
  /** 'source' or a shard id */
  readonly server: string;
  /** definitions of every configured table found there (for drift) */
  infos: Map<string, TableInfo>;
  /** per selected table: sharded → sums per unit; reference → one sum for the whole table */
  tables: Map<string, TableScan>;
  /** selected tables whose definition there differs too much to be queried (drift reports why) */
  skipped: Set<string>;
  /** set when the server could not be read: nothing else above is complete */
  error?: string;
}

export interface TableScan {
  units: Map<string, Sums>;
  /** rows that belong to no unit (a via row whose parent is not there, a NULL key) */
  orphans: number;
  whole?: Sums;
  seconds: number;
  /** a table with several routes: its cross-shard rows here (multi-route/cross-shard-rows.ts), by row key */
  cross?: Map<string, CrossRow>;
  /** a table with several routes: its rows here, each counted once (the units count a row under each of its units) */
  distinct?: number;
}

export interface ScanPlan {
  readonly model: Model;
  /** selected tables, parents first */
  readonly tables: readonly TableModel[];
  readonly units?: readonly string[];
  /** gate for every heavy step (a checksum query, a cell load): bounds work in flight over all servers */
  readonly limit: <T>(fn: () => Promise<T>) => Promise<T>;
  readonly onEvent: (e: ScanEvent) => void;
  /** where each unit lives: given, tables with several routes also read their cross-shard rows */
  readonly home?: (unit: string) => string;
  /** per table, the row hash every server of the comparison uses (tables/row-hash.ts); portable where absent */
  readonly hashes?: ReadonlyMap<string, RowHash>;
}

/**
 * Reads one server: the table definitions, then, inside one REPEATABLE READ snapshot, one grouped
 * query per sharded table (unit, rows, checksum — never one query per unit) and one checksum per
 * reference table. Nothing is written but the session's own temp table of lat/lng cells. Never
 * throws: a server that cannot be read comes back with `error` set, naming it (password redacted).
 */
export async function scanServer(server: string, endpoint: Endpoint, plan: ScanPlan): Promise<ServerScan> {
  const started = performance.now();
  const scan: ServerScan = { server, infos: new Map(), tables: new Map(), skipped: new Set() };
  const clients: pg.Client[] = [];
  let where = endpointName(endpoint);
  try {
    const session = await connect(endpoint, { applicationName: 'shardctl verify' });
    clients.push(session);
    scan.infos = await introspect(session, plan.model.tables.map((t) => t.name));
    const usable = usableTables(plan.model, scan.infos);
    for (const t of plan.tables) if (!usable.has(t.name)) scan.skipped.add(t.name);
    const tables = plan.tables.filter((t) => usable.has(t.name));
    const specs = plan.model.cellSpecs.filter((s) => usable.has(s.table) && tables.some((t) => rootOf(plan.model, t) === s.table));

    // One snapshot for every table of this server; read-only unless a cell table must be loaded.
    await session.query(`BEGIN ISOLATION LEVEL REPEATABLE READ${specs.length ? '' : ' READ ONLY'}`);
    if (specs.length) {
      const snapshot = (await session.query('SELECT pg_export_snapshot() AS s')).rows[0].s as string;
      const reader = await connect(endpoint, { applicationName: 'shardctl verify cells' });
      clients.push(reader);
      await reader.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      await reader.query(`SET TRANSACTION SNAPSHOT '${snapshot.replace(/'/g, "''")}'`);
      const cells = plan.units ? new Set(plan.units) : undefined;
      for (const spec of specs) {
        where = `${endpointName(endpoint)}: table ${spec.table} (cells)`;
        await plan.limit(() => materializeCells(session, reader, spec, h3Strategy(plan.model.config), cells));
      }
      await reader.query('COMMIT');
    }

    for (const t of tables) {
      where = `${endpointName(endpoint)}: table ${t.name}`;
      const t0 = performance.now();
      const ts: TableScan = { units: new Map(), orphans: 0, seconds: 0 };
      if (t.config.route.kind === 'reference') {
        const r = await plan.limit(() => session.query<{ rows: string; checksum: string }>(tableChecksumSql(quoteTable(t.name), t.columns, plan.hashes?.get(t.name))));
        ts.whole = { rows: Number(r.rows[0]!.rows), checksum: r.rows[0]!.checksum };
      } else {
        const sql = unitChecksumSql(outerScope(scopeOf(plan.model.ctx, t.config, plan.units), t.name), t.columns, { hash: plan.hashes?.get(t.name) });
        const r = await plan.limit(() => session.query<{ unit: string | null; rows: string; checksum: string | null }>(sql));
        for (const row of r.rows) {
          if (row.unit === null) ts.orphans += Number(row.rows);
          else ts.units.set(row.unit, { rows: Number(row.rows), checksum: row.checksum ?? '0' });
        }
        if (t.config.routes && plan.home) await readCopies(session, plan, t, ts, server);
      }
      ts.seconds = (performance.now() - t0) / 1000;
      scan.tables.set(t.name, ts);
      const rows = ts.whole?.rows ?? ts.distinct ?? [...ts.units.values()].reduce((n, s) => n + s.rows, ts.orphans);
      plan.onEvent({ type: 'table', server, table: t.name, rows, units: ts.units.size, seconds: ts.seconds });
    }
    await session.query('COMMIT');
  } catch (e) {
    scan.error = isUserError(e) ? redactText(e.message) : describePgError(e, where).message;
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  }
  plan.onEvent({ type: 'server', server, seconds: (performance.now() - started) / 1000, error: scan.error });
  return scan;
}

/**
 * A table with several routes: its rows counted once, and its cross-shard rows (compared copy by
 * copy by verify). On a shard, the copies held for a unit living there leave the sums of their
 * other units, so those units are not reported as misplaced.
 */
async function readCopies(session: pg.ClientBase, plan: ScanPlan, t: TableModel, ts: TableScan, server: string): Promise<void> {
  const scope = scopeOf(plan.model.ctx, t.config, plan.units);
  const n = await plan.limit(() => session.query<{ n: string }>(`SELECT count(*) AS n FROM ${scope.rows!} WHERE ${scope.filter}`));
  ts.distinct = Number(n.rows[0]!.n);
  // every unit of the rows in scope (with --units, a row's other units are not among the grouped ones)
  const seen = await plan.limit(() =>
    session.query<{ u: string }>(`SELECT DISTINCT u FROM ${scope.rows!} CROSS JOIN LATERAL unnest(${scope.units!}) AS u WHERE ${scope.filter} AND u IS NOT NULL`),
  );
  ts.cross = await plan.limit(() => readCrossRows(session, t, scope, seen.rows.map((x) => x.u), plan.home!));
  if (server !== 'source') discountCopies(ts.units, ts.cross, server, plan.home!);
}

/**
 * The scope with its via joins made LEFT joins: a row whose parent is missing on this server is
 * then counted (with a NULL unit, as an orphan) instead of silently vanishing from the comparison.
 */
function outerScope(s: Scope, table: string): Scope {
  if (s.rows) return s; // several routes: no via joins, and the fan-out already keeps rows of no unit
  const from = [`${quoteTable(table)} AS t0`, ...s.using.map((u, i) => `LEFT JOIN ${u} ON ${s.joins[i]}`)].join(' ');
  return { ...s, from };
}

/** Tables that can be queried here: they and every table of their route chain have the columns the model needs. */
function usableTables(model: Model, infos: Map<string, TableInfo>): Set<string> {
  const fits = new Set(
    model.tables.filter((t) => compareTables(t.info, infos.get(t.name), '').every((d) => !d.blocking)).map((t) => t.name),
  );
  return new Set(model.tables.filter((t) => routeChain(model.config, t.config).every((c) => fits.has(qualifiedName(c)))).map((t) => t.name));
}

const rootOf = (model: Model, t: TableModel) => {
  const chain = routeChain(model.config, t.config);
  return qualifiedName(chain[chain.length - 1]!);
};
