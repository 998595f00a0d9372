import type pg from 'pg';
import { connect, destroy, type Endpoint } from '../db/connect.js';
import { quoteIdent, quoteLiteral, quoteTable } from '../db/ident.js';
import { pipeCopy } from '../copy/pipe.js';
import { prepareCells } from './inventory.js';
import { cellTempName, emptyCellTemp } from '../tables/cells.js';
import { linkStagedCells, loadStagedCells, stagedRows, type StagedCells } from '../tables/staged-cells.js';
import { checkForeignKeys, mayBypassTriggers } from '../foreign-keys/after-copy-check.js';
import { unitChecksumSql } from '../tables/checksum.js';
import { readUnitColumns, unitIndex } from './unit-sums.js';
import { shardSums } from './shard-sums.js';
import { raiseWorkMem } from '../db/work-mem.js';
import type { PlacedBatch, UnitColumns } from '../catalog/placements.js';
import type { Model, TableModel } from '../tables/model.js';
import type { CopyFormat } from '../tables/copy-format.js';
import type { RowHash } from '../tables/row-hash.js';
import { deleteSql, qualifiedName, routeChain, scopeOf, selectSql, type Scope } from '../tables/scope.js';

export interface Batch {
  readonly shard: string;
  readonly units: readonly string[];
}

export interface BatchResult {
  readonly placed: PlacedBatch;
  readonly failed: { unit: string; reason: string }[];
  readonly rows: number;
  readonly bytes: number;
  /** where the batch's wall time went (migrate's phase breakdown; the bench reports it) */
  readonly seconds: BatchSeconds;
}

/**
 * A batch's wall time by step: connecting, the snapshot, the cells and the DELETE of the units' old
 * rows; the COPY streams (and the set-based foreign-key check); the wait for the source's sums and
 * the shard's sums after the copy; the two COMMITs.
 */
export interface BatchSeconds {
  prepare: number;
  copy: number;
  checksums: number;
  commit: number;
}

export interface RunCells {
  /** the run's exported source snapshot, which every batch reads (and the staging was computed from) */
  readonly snapshot: string;
  readonly staged: StagedCells;
  /** whether the target shard may already hold rows of a unit (from the preflight's scan of the shard) */
  readonly shardMayHold: (unit: string) => boolean;
}

export interface BatchOptions {
  readonly model: Model;
  readonly source: Endpoint;
  readonly target: Endpoint;
  /** the tables to copy (all sharded tables unless --tables), parents first */
  readonly tables: readonly TableModel[];
  /** compare counts and checksums before committing (default true) */
  readonly verify: boolean;
  /** keep per-row triggers during the COPY (else foreign keys are checked set-based, see foreign-keys/after-copy-check.ts) */
  readonly fireTriggers?: boolean;
  /** lat/lng models in a migrate run: the run's source snapshot and staged cells */
  readonly runCells?: RunCells;
  /** the target holds no row of any of the batch's units (migrate/copy.ts knows): their DELETEs are skipped */
  readonly shardHoldsNone?: boolean;
  readonly signal?: AbortSignal;
  /** read the source in this exported snapshot (an online migration's slot snapshot), not a fresh one */
  readonly snapshot?: string;
  /** COPY format and row hash per table (tables/copy-format.ts proves where binary is safe); text where absent */
  readonly formats?: ReadonlyMap<string, { readonly copy: CopyFormat; readonly hash: RowHash }>;
  onBytes?(bytes: number): void;
  onTable?(table: string, rows: number, bytes: number, format: CopyFormat): void;
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
  const seconds: BatchSeconds = { prepare: 0, copy: 0, checksums: 0, commit: 0 };
  let lap = performance.now();
  const step = (name: keyof BatchSeconds) => {
    const now = performance.now();
    seconds[name] += (now - lap) / 1000;
    lap = now;
  };
  // the source sums' session readied (snapshot and staged cells) while the copy streams
  let sumsReady: Promise<void> | undefined;
  try {
    o.signal?.throwIfAborted();
    const needsCells = o.model.cellSpecs.length > 0;
    // the source sums' session is opened with the other two: one connection wait per batch, not two
    const [src, dst, sums] = await Promise.all([open(o.source), open(o.target), o.verify ? open(o.source) : undefined]);
    await src.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    const cells = new Set(batch.units);
    const run = o.runCells;
    const snapshot = o.snapshot ?? run?.snapshot;
    if (snapshot) await src.query(`SET TRANSACTION SNAPSHOT ${quoteLiteral(snapshot)}`);
    // A fresh batch (the preflight saw none of its units on the shard): the shard's cell tables, once
    // loaded, hold the batch's staged (pk, cell), so they describe the rows this batch copies.
    let stagedOnShard = false;
    // loads the shard session's staged cells, once, when a query there first joins them
    let shardCells = async (): Promise<void> => undefined;
    if (needsCells && run) {
      // The run staged every row's cell once, from this very snapshot, frozen: the source sessions
      // read the staging where it is (staged-cells.ts); the sums' session links it once it is in
      // the snapshot, while the copy streams.
      stagedOnShard = !batch.units.some(run.shardMayHold);
      sumsReady = sums && beginSums(src, sums, run.snapshot, batch.units.length).then(() => linkStagedCells(sums, o.model, run.staged));
      sumsReady?.catch(() => undefined); // observed here, rethrown where the sums await it
      await Promise.all([
        linkStagedCells(src, o.model, run.staged),
        // A shard that may hold rows of these units computes its own cells, to delete them. A fresh
        // one joins its cells only in the per-unit sums (when the whole-table total differs), the
        // foreign-key check of a table under a lat/lng table and the undo of failed units: it loads
        // the staged ones then, not in every batch (0.1-0.2 s a batch on the cities bench).
        stagedOnShard ? undefined : open(o.target).then((reader) => prepareCells(dst, reader, o.model, cells)),
      ]);
      if (stagedOnShard) {
        let loading: Promise<void> | undefined;
        shardCells = () =>
          (loading ??= open(o.source).then(async (reader) => {
            await loadStagedCells(dst, reader, o.model, run.staged, batch.units);
            await reader.end(); // not held for the rest of the batch (ending it again at the end is a no-op)
          }));
      }
    } else if (needsCells) {
      // lat/lng tables: the cell of every row is computed in Node, reading the very same snapshot.
      const snapshot = (await src.query('SELECT pg_export_snapshot() AS s')).rows[0].s as string;
      const [srcReader, dstReader] = await Promise.all([open(o.source), open(o.target)]);
      await srcReader.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      await srcReader.query(`SET TRANSACTION SNAPSHOT ${quoteLiteral(snapshot)}`);
      await Promise.all([prepareCells(src, srcReader, o.model, cells), prepareCells(dst, dstReader, o.model, cells)]);
      await srcReader.query('COMMIT');
    }
    // built once per table: a batch of 50,000 units spells their list in every statement of the batch
    const scopes = new Map<string, Scope>();
    const scope = (t: TableModel) => scopes.get(t.name) ?? scopes.set(t.name, scopeOf(o.model.ctx, t.config, batch.units)).get(t.name)!;
    const hash = (t: TableModel) => o.formats?.get(t.name)?.hash;
    // The source side of the checksums runs on a second connection sharing the snapshot, while the
    // copy streams: it costs the source a scan, not the batch wall time.
    const index = unitIndex(batch.units);
    const sourceSums = sums ? await startSourceSums(src, sums, run?.snapshot, o, scope, index, sumsReady) : undefined;
    await dst.query('BEGIN');
    if (o.verify) await raiseWorkMem(dst, groupsMemory(batch.units.length));
    // With the staged cells on the shard, the delete of a lat/lng table's rows (and its children's)
    // would match the shard's rows by the source's primary keys: a row of another unit placed there
    // that shares a key would go. Those deletes are skipped; they had nothing to delete (the shard
    // holds none of these units), and a shared key still stops the COPY as a duplicate.
    for (const t of [...o.tables].reverse()) if (!o.shardHoldsNone && !(stagedOnShard && rootedAtCells(o.model, t))) await dst.query(deleteSql(t.config, scope(t)));

    const bypass = !o.fireTriggers && (await mayBypassTriggers(dst));
    if (bypass) await dst.query('SET LOCAL session_replication_role = replica');
    step('prepare');
    let rows = 0;
    let bytes = 0;
    const copied = new Map<string, number>();
    for (const t of o.tables) {
      o.signal?.throwIfAborted();
      const target = `${quoteTable(t.name)} (${t.columns.map(quoteIdent).join(', ')})`;
      const format = o.formats?.get(t.name)?.copy ?? 'text';
      const r = await pipeCopy(src, dst, selectSql(scope(t), t.columns), target, o.onBytes, format);
      const staged = run && stagedRows(run.staged, t.name, batch.units);
      if (staged !== undefined && r.rows !== staged) {
        throw new Error(`table ${t.name}: the batch copied ${r.rows} rows of its ${batch.units.length} cells, the run staged ${staged} from the same snapshot; nothing of the batch was kept`);
      }
      copied.set(t.name, r.bytes);
      rows += r.rows;
      bytes += r.bytes;
      o.onTable?.(t.name, r.rows, r.bytes, format);
    }

    if (needsCells && !stagedOnShard) {
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
      await checkForeignKeys(dst, o.tables, scope, o.target.label, (t) => (rootedAtCells(o.model, t) ? shardCells() : undefined));
    }
    step('copy');

    const kept = new Uint8Array(batch.units.length).fill(1);
    const proofs: { table: string; sums: UnitColumns }[] = [];
    const failed: { unit: string; reason: string }[] = [];
    if (o.verify) {
      const bad = new Map<string, string>();
      const wanted = await sourceSums!.pending;
      for (const t of o.tables) {
        const w = wanted.get(t.name)!;
        const grouping = rootedAtCells(o.model, t) ? shardCells : undefined;
        const g = await shardSums(dst, t, { scope: scope(t), hash: hash(t), copiedBytes: copied.get(t.name) ?? 0, wanted: w, index, grouping });
        batch.units.forEach((unit, i) => {
          if (w.rows[i] !== g.rows[i] || w.checksums[i] !== g.checksums[i]) {
            bad.set(unit, bad.get(unit) ?? `table ${t.name}: source ${w.rows[i]} rows, shard ${g.rows[i]} rows${w.rows[i] === g.rows[i] ? ', checksums differ' : ''}`);
          }
        });
        proofs.push({ table: t.name, sums: w });
      }
      if (bad.size > 0 && o.tables.some((t) => t.config.routes)) {
        // Rows with several routes may also belong to this batch's good units or to units placed
        // here earlier: deleting a bad unit's rows could take theirs. Nothing of the batch is kept.
        step('checksums');
        await dst.query('ROLLBACK');
        await src.query('COMMIT');
        const why = [...bad.values()][0]!;
        const failed = batch.units.map((unit) => ({ unit, reason: bad.get(unit) ?? `rolled back with its batch (shares rows with several routes; ${why})` }));
        step('commit');
        return { placed: { units: batch.units, kept: new Uint8Array(batch.units.length), count: 0, tables: [] }, failed, rows: 0, bytes: 0, seconds };
      }
      if (bad.size > 0) {
        const units = [...bad.keys()];
        const undo = (t: TableModel) => scopeOf(o.model.ctx, t.config, units);
        await shardCells(); // loaded already by the per-unit sums that found them (a no-op then)
        for (const t of [...o.tables].reverse()) await dst.query(deleteSql(t.config, undo(t)));
        batch.units.forEach((unit, i) => {
          if (bad.has(unit)) kept[i] = 0;
        });
        for (const [unit, reason] of bad) failed.push({ unit, reason });
      }
    }
    step('checksums');
    await dst.query('COMMIT');
    await src.query('COMMIT');
    step('commit');
    return { placed: { units: batch.units, kept, count: batch.units.length - failed.length, tables: proofs }, failed, rows, bytes, seconds };
  } catch (e) {
    abort();
    throw e;
  } finally {
    o.signal?.removeEventListener('abort', abort);
    await sumsReady?.catch(() => undefined); // a reader it opened is among the clients ended here
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  }
}

/**
 * work_mem for a grouped query with a group per unit: about 1 KiB per group (a key, a count and
 * two numeric sums' states), at most 256 MiB.
 */
const groupsMemory = (units: number): number => Math.min(units * 1024, 256 * 1024 * 1024);

/** Puts `sums`, a second source connection, into the batch's snapshot (`snapshot`, else one `src` exports). */
async function beginSums(src: pg.ClientBase, sums: pg.ClientBase, snapshot: string | undefined, units: number): Promise<void> {
  const shared = snapshot ?? ((await src.query('SELECT pg_export_snapshot() AS s')).rows[0].s as string);
  await sums.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
  await sums.query(`SET TRANSACTION SNAPSHOT ${quoteLiteral(shared)}`);
  await raiseWorkMem(sums, groupsMemory(units));
}

/**
 * Starts the per-unit sums of every table on `sums`, a second source connection in the batch's
 * snapshot with `src`'s cell tables (`ready`: both being set up, from the run's staging; else
 * done here, copying `src`'s). The promise is awaited after the copy; a failure is held until then
 * (and the batch's error path destroys both).
 */
async function startSourceSums(
  src: pg.ClientBase,
  sums: pg.ClientBase,
  snapshot: string | undefined,
  o: BatchOptions,
  scope: (t: TableModel) => Scope,
  index: ReadonlyMap<string, number>,
  ready: Promise<void> | undefined,
): Promise<{ pending: Promise<Map<string, UnitColumns>> }> {
  if (!ready) {
    await beginSums(src, sums, snapshot, index.size);
    for (const spec of o.model.cellSpecs) {
      const temp = await emptyCellTemp(sums, spec);
      await pipeCopy(src, sums, `SELECT pk, cell FROM ${temp}`, `${temp} (pk, cell)`);
      await sums.query(`ANALYZE ${temp}`);
    }
  }
  const pending = (async () => {
    await ready;
    const out = new Map<string, UnitColumns>();
    for (const t of o.tables) out.set(t.name, await readUnitColumns(sums, unitChecksumSql(scope(t), t.columns, { hash: o.formats?.get(t.name)?.hash }), index));
    return out;
  })();
  pending.catch(() => undefined); // observed here, rethrown where it is awaited
  return { pending }; // wrapped: an async function returning the bare promise would wait for it
}

/** Whether `t`'s rows find their unit through a lat/lng table's cells (it, or a table under it). */
function rootedAtCells(model: Model, t: TableModel): boolean {
  if (t.config.routes) return false;
  const chain = routeChain(model.config, t.config);
  const root = qualifiedName(chain[chain.length - 1]!);
  return model.cellSpecs.some((c) => c.table === root);
}
