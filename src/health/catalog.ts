import { readCatalogFacts, type CatalogFacts } from '../catalog/health-facts.js';
import { CATALOG_VERSION } from '../catalog/schema.js';
import type { Config } from '../config/types.js';
import { redactUrl } from '../redact.js';
import { hostPort } from './format.js';
import { timedSession, type Timed } from './session.js';
import { worstOf } from './status.js';
import type { CatalogReport, CheckResult, ServerReport } from './types.js';

export type { CatalogFacts };

/** The location design's alert: cross-shard interactions above 10% of the total. */
export const CROSS_SHARD_ALERT = 0.1;

/** Reads what the catalog says, bounded by `timeoutMs`; read-only (never creates the schema). */
export function readCatalog(config: Config, timeoutMs: number): Promise<Timed<CatalogFacts>> {
  const ids = config.shards.map((s) => s.id);
  return timedSession({ label: 'catalog', url: config.catalog }, timeoutMs, (c) => readCatalogFacts(c, ids));
}

/**
 * Catalog consistency: every catalog shard configured and reachable, placements only on configured
 * shards, no unit fenced or half-moved (rows in shardctl.moves) unless a run holding the lock is
 * moving it right now. No catalog schema yet is fine (nothing migrated); an unreachable catalog is
 * critical.
 */
export function evaluateCatalog(config: Config, outcome: Timed<CatalogFacts>, servers: readonly ServerReport[]): CatalogReport {
  const base = { url: redactUrl(config.catalog), host: hostPort(config.catalog) };
  const empty = { shards: [], unknownShards: [], unreachableShards: [], strayPlacements: [], moves: [], moveCount: 0, runInProgress: false };
  if (!outcome.ok) {
    const reachable = outcome.connected && !outcome.timedOut;
    const check: CheckResult = reachable
      ? { check: 'catalog', status: 'unknown', message: `cannot read the catalog: ${outcome.reason}` }
      : { check: 'catalog', status: 'critical', message: `catalog unreachable (${outcome.reason})` };
    return { ...base, ...empty, status: check.status, reachable, present: false, error: outcome.reason, checks: [check] };
  }
  const f = outcome.value;
  if (!f.present) {
    const check: CheckResult = { check: 'catalog', status: 'ok', message: 'no catalog yet (nothing migrated)' };
    return { ...base, ...empty, status: 'ok', reachable: true, present: false, checks: [check] };
  }
  const configured = new Set(config.shards.map((s) => s.id));
  const down = new Set(servers.filter((s) => s.role === 'primary' && !s.up).map((s) => s.shard));
  const unknownShards = f.shards.filter((id) => !configured.has(id));
  const unreachableShards = f.shards.filter((id) => configured.has(id) && down.has(id));
  const problems: CheckResult[] = [];
  const crit = (message: string) => problems.push({ check: 'catalog', status: 'critical', message });
  if (f.schemaVersion > CATALOG_VERSION) {
    problems.push({ check: 'catalog', status: 'unknown', message: `catalog schema version ${f.schemaVersion} is newer than this shardctl understands (${CATALOG_VERSION})` });
  }
  if (unknownShards.length) crit(`the catalog lists shard${plural(unknownShards)} ${unknownShards.join(', ')} that the config does not`);
  if (unreachableShards.length) crit(`catalog shard${plural(unreachableShards)} ${unreachableShards.join(', ')} unreachable`);
  for (const s of f.stray) {
    crit(`${s.units} placement${s.units === 1 ? '' : 's'} on shard ${s.shard}, which is not configured (units: ${s.sample.join(', ')}${s.units > s.sample.length ? ', …' : ''})`);
  }
  if (f.moveCount > 0) {
    const units = f.moves.map((m) => `${m.unit} ${m.from}→${m.to} at ${m.step}`).join('; ');
    const more = f.moveCount > f.moves.length ? `; and ${f.moveCount - f.moves.length} more` : '';
    if (f.runInProgress) {
      problems.push({ check: 'catalog', status: 'warning', message: `a rebalance is running: ${f.moveCount} unit${f.moveCount === 1 ? '' : 's'} in flight (${units}${more})` });
    } else {
      crit(`${f.moveCount} unit${f.moveCount === 1 ? '' : 's'} left fenced or half-moved by an interrupted run (${units}${more}); run \`shardctl rebalance --apply\` to finish`);
    }
  }
  for (const d of f.deferredIndexes) {
    const what = `${d.indexes} secondary index${d.indexes === 1 ? '' : 'es'} that migrate dropped for the initial load on shard ${d.shard}`;
    problems.push({
      check: 'catalog',
      status: 'warning',
      message: f.runInProgress
        ? `${what} will be built when the running migrate has copied the data`
        : configured.has(d.shard)
          ? `${what} ${d.indexes === 1 ? 'is' : 'are'} not built yet (an interrupted run): the next \`shardctl migrate\` builds ${d.indexes === 1 ? 'it' : 'them'}`
          : `${what} ${d.indexes === 1 ? 'is' : 'are'} still listed, but the shard is no longer configured: build ${d.indexes === 1 ? 'it' : 'them'} there by hand if it serves again`,
    });
  }
  for (const x of f.crossShard) {
    if (!x.rows || x.crossShard / x.rows <= CROSS_SHARD_ALERT) continue;
    const pct = ((100 * x.crossShard) / x.rows).toFixed(1);
    problems.push({
      check: 'catalog',
      status: 'warning',
      message: `${pct}% of ${x.table}'s rows (${x.crossShard} of ${x.rows}) live on more than one shard, above the ${CROSS_SHARD_ALERT * 100}% alert: a mapping that keeps regions together lowers it (shardctl plan --propose-mapping)`,
    });
  }
  const checks: CheckResult[] = problems.length
    ? problems
    : [{ check: 'catalog', status: 'ok', message: `consistent: ${f.shards.length} shard${plural(f.shards)} in the catalog` }];
  return {
    ...base,
    status: worstOf(checks),
    reachable: true,
    present: true,
    shards: f.shards,
    unknownShards,
    unreachableShards,
    strayPlacements: f.stray,
    moves: f.moves,
    moveCount: f.moveCount,
    runInProgress: f.runInProgress,
    checks,
  };
}

const plural = (xs: readonly unknown[]) => (xs.length === 1 ? '' : 's');
