import type pg from 'pg';
import type { Catalog } from '../catalog/catalog.js';
import type { Config } from '../config/types.js';
import { connect, withClient, type Endpoint } from '../db/connect.js';
import { loadModel, type Model } from '../tables/model.js';
import { dropStagedCells, stageCells, type StagedCells } from '../tables/staged-cells.js';
import { captureDefinitions, storeDefinitions, tableDefinitions } from '../tables/definitions.js';
import { addCounts, countUnits, prepareCells, rootTables } from '../unit-copy/inventory.js';
import type { EventSink } from './events.js';
import { pgFailure } from '../db/pg-error.js';
import { checkCrossingKeys, checkCrossingKeysOn, checkSourceRows } from './preflight.js';
import { openRunSnapshot, type RunSnapshot } from './run-snapshot.js';
import { beginSnapshot } from '../db/snapshot.js';

export interface SourceView {
  readonly model: Model;
  /** the units of the root tables → their rows there */
  readonly units: Map<string, number>;
  /** lat/lng models in a recorded run: the run's snapshot and the cells staged from it */
  readonly cells?: { readonly snapshot: string; readonly staged: StagedCells };
  /** ends the run snapshot and drops the staging; call when the run's batches are done */
  close(): Promise<void>;
}

/**
 * The model and the units of the source (root tables only); a recorded run also stores the table
 * definitions. A recorded run with lat/lng tables reads everything through one snapshot, held open
 * until `close()`, from which each row's cell is staged once (staged-cells.ts); without the
 * privilege to stage, it falls back to computing cells per batch.
 */
export async function readSource(
  source: Endpoint,
  config: Config,
  recordTo: Catalog | undefined,
  emit: EventSink,
  snapshot?: string,
  /** called as soon as the model is read, so the caller can check the shards meanwhile */
  onModel?: (model: Model) => void,
): Promise<SourceView> {
  if (!recordTo || !config.tables.some((t) => t.route.kind === 'latlng')) {
    const view = await withClient(source, async (c) => {
      if (snapshot) await beginSnapshot(c, snapshot); // migrate --follow: the slot's snapshot
      return look(c, source, config, recordTo, onModel, snapshot);
    });
    return { ...view, close: async () => undefined };
  }
  const snap: RunSnapshot = await openRunSnapshot(source, snapshot);
  let staged: StagedCells | undefined;
  const close = async () => {
    await snap.client.end().catch(() => undefined);
    if (staged) {
      await staged.indexed.catch(() => undefined);
      await withClient(source, (w) => dropStagedCells(w, staged!)).catch(() => undefined);
    }
  };
  try {
    const c = snap.client;
    const model = await loadModel(config, c);
    onModel?.(model);
    await checkSourceRows(c, model);
    // foreign keys that would break on the shards stop the run before anything is written
    await checkCrossingKeysOn(source, model);
    await captureDefinitions(recordTo.client, c, model);
    // The staging is written on a session of its own (and counted as it is written), frozen so the
    // snapshot sees it; the snapshot's session must take no lock on it, or dropping it at the end
    // would wait forever. The writer builds the staging's indexes while the run goes on
    // (StagedCells.indexed), then ends.
    const writer = await connect(source);
    try {
      staged = await stageCells(writer, c, model, (table, rows, seconds) => emit({ type: 'cells', table, rows, seconds }));
    } catch (e) {
      await writer.end().catch(() => undefined);
      throw pgFailure(e, source.label);
    }
    void (staged?.indexed ?? Promise.resolve()).catch(() => undefined).finally(() => writer.end().catch(() => undefined));
    if (!staged) return { ...(await inventory(c, source, model)), close };
    const units = await countUnits(c, model, rootTables(model).filter((t) => !staged!.tables.has(t.name)));
    for (const t of rootTables(model)) {
      const perCell = staged.counts.get(t.name);
      if (perCell) addCounts(units, [...perCell].map(([cell, n]) => [cell, String(n), '0'] as const));
    }
    return { model, units, cells: { snapshot: snap.snapshot, staged }, close };
  } catch (e) {
    await close();
    throw e;
  }
}

async function look(c: pg.Client, source: Endpoint, config: Config, recordTo: Catalog | undefined, onModel?: (model: Model) => void, snapshot?: string) {
  const model = await loadModel(config, c);
  onModel?.(model);
  // The tables' DDL is read on a session of its own (in the same snapshot, if any) while this one
  // scans the tables: the preflight waits for the longer of the two, not their sum. It is stored
  // only once the source's checks pass.
  const ddl = recordTo
    ? withClient(source, async (d) => {
        if (snapshot) await beginSnapshot(d, snapshot);
        return tableDefinitions(d, model);
      })
    : undefined;
  ddl?.catch(() => undefined); // observed here: awaited below, after the checks
  try {
    // the inventory's scan of each root table also counts its rows of no unit (a NULL key)
    const nulls = new Map<string, number>();
    const view = await inventory(c, source, model, nulls);
    await checkSourceRows(c, model, nulls);
    if (recordTo) await storeDefinitions(recordTo.client, await ddl!);
    return view;
  } catch (e) {
    await ddl?.catch(() => undefined); // a refusal leaves no session behind (and nothing stored)
    throw e;
  }
}

/** Units of the root tables; lat/lng tables through cells computed in this session. */
async function inventory(c: pg.Client, source: Endpoint, model: Model, nulls?: Map<string, number>) {
  const reader = model.cellSpecs.length ? await connect(source) : undefined;
  try {
    if (reader) await prepareCells(c, reader, model);
    // foreign keys that would break on the shards stop the run before anything is written
    await checkCrossingKeys(c, model);
    return { model, units: await countUnits(c, model, rootTables(model), { nulls }) };
  } finally {
    await reader?.end();
  }
}
