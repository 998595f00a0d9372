/** What the migrate engine reports while it works; the CLI picks a reporter (bars, lines, NDJSON). */
export type MigrateEvent =
  /** a lat/lng table's cells computed once for the run (staged-cells.ts), before 'start' */
  | { type: 'cells'; table: string; rows: number; seconds: number }
  | { type: 'start'; runId?: number; units: number; skipped: number; rows: number; shards: { shard: string; units: number; rows: number }[] }
  | { type: 'reference'; shard: string; table: string; rows: number; changed: boolean }
  | { type: 'bytes'; shard: string; bytes: number }
  /** format: the COPY format the table went in (binary where the column types are proven identical) */
  | { type: 'table'; shard: string; table: string; units: number; rows: number; bytes: number; format?: 'text' | 'binary' }
  | { type: 'batch'; shard: string; units: string[]; rows: number; bytes: number; failed: { unit: string; reason: string }[] }
  | { type: 'batch-error'; shard: string; units: string[]; error: string; retrying: boolean }
  | { type: 'sequences'; shard: string; sequences: number }
  /** deferred secondary indexes (--indexes-after) dropped before the copy ('deferred') or built after it */
  | { type: 'indexes-deferred'; shard: string; indexes: number }
  | { type: 'indexes'; shard: string; indexes: number; seconds: number }
  | { type: 'done'; seconds: number; rows: number; bytes: number };

export type EventSink = (e: MigrateEvent) => void;
