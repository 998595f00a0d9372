import type pg from 'pg';
import { connect, destroy, type Endpoint } from '../db/connect.js';
import { quoteIdent, quoteTable } from '../db/ident.js';
import { pipeCopy } from '../copy/pipe.js';
import type { TableProof } from '../catalog/placements.js';
import { prepareCells } from './inventory.js';
import { cellTempName } from '../tables/cells.js';
import { checkForeignKeys, mayBypassTriggers } from './foreign-keys.js';
import { toUnitSums, unitChecksumSql, type UnitSum } from '../tables/checksum.js';
import type { Model, TableModel } from '../tables/model.js';
import { deleteSql, scopeOf, selectSql } from '../tables/scope.js';

export interface Batch {
  readonly shard: string;
  readonly units: readonly string[];
}

export interface PlacedUnit {
  rows: bigint;
  bytes: bigint;
  tables: TableProof[];
}

export interface BatchResult {
  readonly placed: Map<string, PlacedUnit>;
  readonly failed: { unit: string; reason: string }[];
  readonly rows: number;
  readonly bytes: number;
}

export interface BatchOptions {
  readonly model: Model;
  readonly source: Endpoint;
  readonly target: Endpoint;
  /** the tables to copy (all sharded tables unless --tables), parents first */
  readonly tables: readonly TableModel[];
  /** compare counts and checksums before committing (default true) */
  readonly verify: boolean;
  /** keep per-row triggers during the COPY (else foreign keys are checked set-based, see foreign-keys.ts) */
  readonly fireTriggers?: boolean;
  readonly signal?: AbortSignal;
  onBytes?(bytes: number): void;
  onTable?(table: string, rows: number, bytes: number): void;
}

/**
 * Copies one batch of units (all bound for the same shard):
 *   source: one REPEATABLE READ snapshot for every table of the batch;
 *   target: one transaction that first deletes the units' rows (children first), then COPYs every
 *   table (parents first), then compares per-unit counts and checksums with the source snapshot.
 * Units that do not match are deleted again inside the transaction and reported as failed; the rest
 * commit together. So a unit is never half-present on a shard and a rerun is idempotent.
 * Any error destroys every connection (a server-side rollback) and is rethrown.
 */
export async function copyBatch(batch: Batch, o: BatchOptions): Promise<BatchResult> {
  const clients: pg.Client[] = [];
  const open = async (e: Endpoint) => {
    const c = await connect(e, { applicationName: `shardctl migrate ${batch.shard}` });
    clients.push(c);
    return c;
  };
  const abort = () => clients.forEach(destroy);
  o.signal?.addEventListener('abort', abort, { once: true });
  try {
    o.signal?.throwIfAborted();
    const needsCells = o.model.cellSpecs.length > 0;
    const [src, dst] = await Promise.all([open(o.source), open(o.target)]);
    await src.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    const cells = new Set(batch.units);
    if (needsCells) {
      // lat/lng tables: the cell of every row is computed in Node, reading the very same snapshot.
      const snapshot = (await src.query('SELECT pg_export_snapshot() AS s')).rows[0].s as string;
      const [srcReader, dstReader] = await Promise.all([open(o.source), open(o.target)]);
      await srcReader.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      await srcReader.query(`SET TRANSACTION SNAPSHOT '${snapshot.replace(/'/g, "''")}'`);
      await Promise.all([prepareCells(src, srcReader, o.model, cells), prepareCells(dst, dstReader, o.model, cells)]);
      await srcReader.query('COMMIT');
    }
    await dst.query('BEGIN');
    const scope = (t: TableModel) => scopeOf(o.model.ctx, t.config, batch.units);
    for (const t of [...o.tables].reverse()) await dst.query(deleteSql(t.config, scope(t)));

    const bypass = !o.fireTriggers && (await mayBypassTriggers(dst));
    if (bypass) await dst.query('SET LOCAL session_replication_role = replica');
    let rows = 0;
    let bytes = 0;
    for (const t of o.tables) {
      o.signal?.throwIfAborted();
      const target = `${quoteTable(t.name)} (${t.columns.map(quoteIdent).join(', ')})`;
      const r = await pipeCopy(src, dst, selectSql(scope(t), t.columns), target, o.onBytes);
      rows += r.rows;
      bytes += r.bytes;
      o.onTable?.(t.name, r.rows, r.bytes);
    }

    if (needsCells) {
      // The shard's cell tables were computed before the copy (to delete the old rows); they must now
      // describe the copied rows. Those are the source snapshot's rows, whose (pk, cell) the source
      // session holds; the checksums below then prove the rows, lat/lng included, are identical.
      for (const spec of o.model.cellSpecs) {
        const temp = cellTempName(spec.table);
        await dst.query(`TRUNCATE ${temp}`);
        await pipeCopy(src, dst, `SELECT pk, cell FROM ${temp}`, `${temp} (pk, cell)`);
        await dst.query(`ANALYZE ${temp}`);
      }
    }

    if (bypass) {
      await dst.query('SET LOCAL session_replication_role = origin');
      await checkForeignKeys(dst, o.tables, scope, o.target.label);
    }

    const placed = new Map<string, PlacedUnit>(batch.units.map((u) => [u, { rows: 0n, bytes: 0n, tables: [] }]));
    const failed: { unit: string; reason: string }[] = [];
    if (o.verify) {
      const bad = new Map<string, string>();
      for (const t of o.tables) {
        const sql = unitChecksumSql(scope(t), t.columns);
        const [a, b] = await Promise.all([src.query(sql), dst.query(sql)]);
        const want = toUnitSums(a.rows);
        const got = toUnitSums(b.rows);
        for (const unit of batch.units) {
          const w = want.get(unit) ?? ZERO;
          const g = got.get(unit) ?? ZERO;
          if (w.rows !== g.rows || w.checksum !== g.checksum) {
            bad.set(unit, bad.get(unit) ?? `table ${t.name}: source ${w.rows} rows, shard ${g.rows} rows${w.rows === g.rows ? ', checksums differ' : ''}`);
          } else if (w.rows > 0n) {
            const p = placed.get(unit)!;
            p.tables.push({ table: t.name, rows: w.rows, checksum: w.checksum });
            p.rows += w.rows;
            p.bytes += w.bytes;
          }
        }
      }
      if (bad.size > 0) {
        const units = [...bad.keys()];
        const undo = (t: TableModel) => scopeOf(o.model.ctx, t.config, units);
        for (const t of [...o.tables].reverse()) await dst.query(deleteSql(t.config, undo(t)));
        for (const [unit, reason] of bad) {
          placed.delete(unit);
          failed.push({ unit, reason });
        }
      }
    }
    await dst.query('COMMIT');
    await src.query('COMMIT');
    return { placed, failed, rows, bytes };
  } catch (e) {
    abort();
    throw e;
  } finally {
    o.signal?.removeEventListener('abort', abort);
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  }
}

const ZERO: UnitSum = { rows: 0n, checksum: '0', bytes: 0n };
