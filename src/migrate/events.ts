import type { BatchSeconds } from '../unit-copy/batch.js';

/** What the migrate engine reports while it works; the CLI picks a reporter (bars, lines, NDJSON). */
export type MigrateEvent =
  /** a lat/lng table's cells computed once for the run (staged-cells.ts), before 'start' */
  | { type: 'cells'; table: string; rows: number; seconds: number }
  | { type: 'start'; runId?: number; units: number; skipped: number; rows: number; shards: { shard: string; units: number; rows: number }[] }
  | { type: 'reference'; shard: string; table: string; rows: number; changed: boolean }
  | { type: 'bytes'; shard: string; bytes: number }
  /** format: the COPY format the table went in (binary where the column types are proven identical) */
  | { type: 'table'; shard: string; table: string; units: number; rows: number; bytes: number; format?: 'text' | 'binary' }
  /** seconds: the batch's wall time by step (unit-copy/batch.ts), and its catalog journal write */
  | { type: 'batch'; shard: string; units: string[]; rows: number; bytes: number; failed: { unit: string; reason: string }[]; seconds?: BatchSeconds & { journal: number } }
  | { type: 'batch-error'; shard: string; units: string[]; error: string; retrying: boolean }
  | { type: 'sequences'; shard: string; sequences: number }
  /** secondary indexes of empty shard tables (initial loads) dropped before the copy ('deferred') or built after it */
  | { type: 'indexes-deferred'; shard: string; indexes: number }
  | { type: 'indexes'; shard: string; indexes: number; seconds: number }
  /** a step of the run finished, with its wall time: the phase breakdown of a run (the bench's table) */
  | { type: 'step'; step: MigrateStep; seconds: number }
  | { type: 'done'; seconds: number; rows: number; bytes: number };

/**
 * The steps of a run outside its batches. preflight: the source read (model, inventory, the checks
 * of its rows and keys) and the shards' checks running beside it, until the 'start' event; then the
 * reference tables, the deferred indexes, the sequences, the guards, the cross-shard record.
 */
export type MigrateStep = 'preflight' | 'reference' | 'batches' | 'indexes' | 'sequences' | 'guards' | 'cross-shard' | 'finish';

export type EventSink = (e: MigrateEvent) => void;
