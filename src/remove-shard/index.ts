import type { Config } from '../config/types.js';
import { placementSizesIfAny, type PlacedSize as Placed } from '../catalog/placements.js';
import { checkNoOnlineWindow } from '../stream/window.js';
import { withCatalogSession, withRun } from '../catalog/run.js';
import { isConnectError, withClient } from '../db/connect.js';
import { quoteTable } from '../db/ident.js';
import { usageError } from '../errors.js';
import { shardEndpoint } from '../db/endpoints.js';
import { rebalance, type RebalanceOptions, type RebalanceResult } from '../rebalance/index.js';
import { jumpHash } from '../routing/jump.js';
import { tenantKey64 } from '../routing/tenant-key.js';
import { allEdits, dropShard, editConfigFile, previewConfigEdit, removePin, setMapping, setPin } from '../config/edit-file.js';
import { recordTopology } from '../fence/record-topology.js';
import { loadModel } from '../tables/model.js';
import { findUnplacedFromCatalog } from '../unit-copy/unplaced.js';
import { forgetShardDeferredIndexes } from '../catalog/deferred-indexes.js';

export interface RemoveShardOptions extends Pick<RebalanceOptions, 'concurrency' | 'offline' | 'timeoutSeconds' | 'signal' | 'onEvent' | 'onMovePoint'> {
  /** drain and remove (default: only show the plan) */
  apply?: boolean;
}

export interface RemoveShardResult {
  id: string;
  /** jump: tenant → shard pins that drain it; h3: cell → shard mapping entries */
  reassign: { unit: string; to: string }[];
  /** the moves that drain it (planned, or as carried out) */
  drain: RebalanceResult;
  /** the shard has left the config and the catalog */
  removed: boolean;
  /** what it still holds when it could not leave */
  remaining: string[];
  config?: Config;
}

/**
 * Drains a shard and removes it from the topology. h3: every cell mapped to it is remapped onto the
 * remaining shards (largest cell to the least loaded shard) and moved. jump: only the last shard can
 * leave without remapping about every tenant, so any other is refused with the way to empty it (pins);
 * the last one's tenants are pinned to the shard the hash gives them without it, moved, and the pins
 * dropped with the shard. The shard leaves the config and the catalog only once it holds nothing. Each
 * step is written before the next starts, so a rerun after a crash continues where it stopped.
 *
 * @example await removeShard(loadConfig('shardctl.yaml'), 's4', { apply: true });
 */
export async function removeShard(config: Config, id: string, opts: RemoveShardOptions = {}): Promise<RemoveShardResult> {
  const ids = config.shards.map((s) => s.id);
  if (!ids.includes(id)) throw usageError(`${config.file}: no shard ${id} (shards: ${ids.join(', ')})`);
  if (ids.length === 1) throw usageError(`shard ${id} is the only shard; there is nowhere to move its data`);
  const placed = await withCatalogSession(config.catalog, async (c) => {
    const placed = await placementSizesIfAny(c);
    // units created on the shard after the last topology change have no placement yet: drained as well
    // (a preview reaches no further than it can, as rebalance's: --apply scans again and refuses)
    const born = placed.size
      ? await findUnplacedFromCatalog(config, c, [id]).catch((e: unknown) => {
          if (opts.apply || !isConnectError(e)) throw e;
          return [];
        })
      : [];
    for (const u of born) placed.set(u.unit, { shard: id, bytes: u.bytes });
    return placed;
  });
  const on = [...placed].filter(([, p]) => p.shard === id).map(([u]) => u);
  const reassign = config.strategy.kind === 'jump' ? jumpDrain(config, id, on) : cellDrain(config, id, on, placed);
  const drainEdit = config.strategy.kind === 'jump'
    ? allEdits(...reassign.map((r) => setPin(r.unit, r.to)))
    : allEdits(...reassign.map((r) => setMapping(r.unit, r.to)));
  const result: RemoveShardResult = { id, reassign, drain: undefined as unknown as RebalanceResult, removed: false, remaining: [] };
  if (!opts.apply) {
    result.drain = await rebalance(reassign.length ? previewConfigEdit(config.file, drainEdit) : config, { apply: false });
    return result;
  }
  await checkNoOnlineWindow(config.catalog, 'remove-shard --apply');
  // the remapping is written only once the rebalance's preflight passed: a refusal leaves the file as it was
  const drained = reassign.length ? previewConfigEdit(config.file, drainEdit) : config;
  const writeDrain = () => void (reassign.length && editConfigFile(config.file, drainEdit));
  result.drain = await rebalance(drained, { ...opts, apply: true, onPreflightPassed: writeDrain });
  if (!result.drain.ok) return result;
  result.remaining = await leftOn(drained, id);
  if (result.remaining.length) return result;
  // Pins the drain wrote (or any pin) that now say what the hash says without the shard are redundant.
  const final = editConfigFile(config.file, allEdits(dropShard(id), ...redundantPins(drained, id).map((t) => removePin(t))));
  await withRun(config.catalog, { command: 'remove-shard', args: { id }, lock: 'run', outcome: () => ({ status: 'ok', summary: { id, units: on.length } }) }, async ({ catalog, run }) => {
    // units created on the remaining shards since the drain began are placed where they are
    const scan = () => findUnplacedFromCatalog(drained, catalog.client, final.shards.map((s) => s.id));
    const model = await withClient(shardEndpoint(final, final.shards[0]!.id), (c) => loadModel(final, c, `shard ${final.shards[0]!.id}`));
    await recordTopology(catalog.client, final, { fleet: drained, model, unplaced: await scan(), rescan: scan, runId: run?.id });
    // indexes an initial migrate dropped there and never built: every later migrate would
    // report them for a shard it no longer knows
    await forgetShardDeferredIndexes(catalog.client, id);
  });
  result.removed = true;
  result.config = final;
  return result;
}

/** jump: the last shard's tenants (placed there or pinned to it) go where the hash puts them without it. */
function jumpDrain(config: Config, id: string, on: string[]): { unit: string; to: string }[] {
  const st = config.strategy;
  if (st.kind !== 'jump') throw new Error('internal: jump drain of an h3 config');
  const ids = config.shards.map((s) => s.id);
  const last = ids.at(-1)!;
  if (id !== last) {
    throw usageError(
      `shard ${id} cannot leave: with the jump hash only the last shard (${last}) can be removed; removing bucket ${ids.indexOf(id)} of ${ids.length} would remap almost every tenant`,
      `to empty it instead, pin its ${on.length} tenant(s) to other shards (shardctl pin TENANT SHARD --apply); it then stays in the topology, holding only tenants created later`,
    );
  }
  const rest = ids.slice(0, -1);
  const tenants = new Set([...on, ...Object.entries(st.pins).filter(([, s]) => s === id).map(([t]) => t)]);
  return [...tenants].sort().map((t) => ({ unit: t, to: st.pins[t] !== undefined && st.pins[t] !== id ? st.pins[t]! : rest[jumpHash(tenantKey64(t), rest.length)]! }));
}

/** h3: each cell mapped to or placed on the shard goes to the remaining shard holding the fewest bytes, largest cells first. */
function cellDrain(config: Config, id: string, on: string[], placed: Map<string, Placed>): { unit: string; to: string }[] {
  const st = config.strategy;
  if (st.kind !== 'h3') throw new Error('internal: cell drain of a jump config');
  if (st.defaultShard === id) {
    throw usageError(`shard ${id} is the default shard (unmapped cells go to it)`, 'make another shard the default (strategy.defaultShard) and rebalance first');
  }
  const cells = [...new Set([...st.mapping.filter((m) => m.shard === id).map((m) => m.cell.toLowerCase()), ...on])];
  const load = new Map(config.shards.filter((s) => s.id !== id).map((s) => [s.id, 0]));
  for (const p of placed.values()) if (load.has(p.shard)) load.set(p.shard, load.get(p.shard)! + p.bytes);
  const bytes = (c: string) => placed.get(c)?.bytes ?? 0;
  const out: { unit: string; to: string }[] = [];
  for (const cell of cells.sort((a, b) => bytes(b) - bytes(a) || a.localeCompare(b))) {
    const to = [...load].sort((a, b) => a[1] - b[1] || a[0].localeCompare(b[0]))[0]![0];
    load.set(to, load.get(to)! + bytes(cell));
    out.push({ unit: cell, to });
  }
  return out;
}

function redundantPins(config: Config, id: string): string[] {
  const st = config.strategy;
  if (st.kind !== 'jump') return [];
  const rest = config.shards.map((s) => s.id).filter((s) => s !== id);
  return Object.entries(st.pins).filter(([t, s]) => rest[jumpHash(tenantKey64(t), rest.length)] === s).map(([t]) => t);
}

/** What keeps the shard from leaving: placements, or rows in its sharded tables (reference copies do not count). */
async function leftOn(config: Config, id: string): Promise<string[]> {
  const placed = await readPlaced(config);
  const units = [...placed].filter(([, p]) => p.shard === id).map(([u]) => u);
  const out = units.length ? [`${units.length} unit(s) still placed on it (${units.slice(0, 5).join(', ')})`] : [];
  await withClient(shardEndpoint(config, id), async (c) => {
    for (const t of config.tables.filter((x) => x.route.kind !== 'reference')) {
      const name = `${t.schema}.${t.name}`;
      const exists = await c.query('SELECT to_regclass($1) IS NOT NULL AS ok', [quoteTable(name)]);
      if (!exists.rows[0].ok) continue;
      const any = await c.query(`SELECT EXISTS (SELECT 1 FROM ${quoteTable(name)}) AS any`);
      if (any.rows[0].any) out.push(`table ${name} still holds rows (written there after the drain was planned?)`);
    }
  });
  return out;
}

/** Placements with their size (none when no run has created the catalog yet). */
const readPlaced = (config: Config): Promise<Map<string, Placed>> => withCatalogSession(config.catalog, placementSizesIfAny);
