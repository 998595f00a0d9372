import type { RunScope } from '../catalog/run.js';
import type { ReferenceResult } from '../unit-copy/reference.js';
import type { EventSink } from './events.js';

// What migrate takes and returns: apart from index.ts, so the files it runs (copy.ts, guards.ts) need not import index.ts back.

export interface MigrateOptions {
  /** streams (batches) in flight at once; default 2 (NOTES-COPY: 2 beat 4 on 2 cores) */
  concurrency?: number;
  /** only these units (tenant keys or H3 cells) */
  units?: readonly string[];
  /** only these tables (plus nothing else: parents are not added) */
  tables?: readonly string[];
  /** a reviewed plan (`plan --out`): exactly its units, refused if routing changed since */
  plan?: { units: readonly { unit: string; shard: string }[] };
  dryRun?: boolean;
  /** compare counts and checksums per unit before committing (default true) */
  verify?: boolean;
  /** copy units again even if the catalog says they are placed */
  resync?: boolean;
  /** rows of the keyed tables per batch (a batch is one source snapshot and one target transaction); default 1,000,000 */
  batchRows?: number;
  /** estimated bytes of all copied tables per batch (table sizes / rows); default 512 MiB; whichever of rows and bytes is reached first ends a batch */
  batchBytes?: number;
  /**
   * 'auto' (default): binary COPY for the tables whose column types are proven identical on the
   * source and the shard (tables/copy-format.ts), text for the others; 'text': text everywhere
   */
  copyFormat?: 'auto' | 'text';
  /**
   * initial loads (default true): drop the secondary indexes of EMPTY shard tables before the copy
   * and build them after it (migrate/indexes-after.ts); false keeps them. Indexes a killed run left
   * deferred are built by any run.
   */
  indexesAfter?: boolean;
  /** keep per-row triggers on the shards during the COPY (slower; default: foreign keys checked set-based) */
  fireTriggers?: boolean;
  /** before each batch: waits while production asks the copy to slow down (src/throttle/) */
  throttle?: { wait(): Promise<void> };
  signal?: AbortSignal;
  onEvent?: EventSink;
  /** read the source in this exported snapshot (`migrate --follow`: the slot's snapshot) */
  snapshot?: string;
  /** run under a catalog lock and run record the caller holds (`migrate --follow` keeps them while it streams) */
  held?: RunScope;
}

export interface MigrateResult {
  ok: boolean;
  dryRun: boolean;
  runId?: number;
  units: { total: number; copied: number; skipped: number; failed: number; elsewhere: number };
  rows: number;
  bytes: number;
  seconds: number;
  shards: { shard: string; units: number; rows: number; bytes: number; failed: number }[];
  reference: (ReferenceResult & { shard: string })[];
  /** units that did not match after the copy (rolled back on the shard) */
  failures: { unit: string; shard: string; reason: string }[];
  /** batches that could not run: their units were not moved; `unreachable` when a server could not be reached or went away */
  errors: { shard: string; units: string[]; error: string; unreachable: boolean }[];
  /** units placed on another shard than their route: rebalance moves them, migrate does not */
  elsewhere: { unit: string; placedOn: string; routesTo: string }[];
  /** units the catalog places but the source no longer holds (deleted since they were copied): migrate leaves their rows where they are */
  gone: { unit: string; placedOn: string }[];
  /** tables with several routes: their rows and how many live on more than one shard (the catalog's record) */
  crossShard?: { table: string; rows: number; crossShard: number }[];
}
