/** The shapes of a verify run: what it was asked, what it found, and what it reports as it goes. */
import type { ScanEvent, Sums } from '../unit-copy/scan.js';

export type { Sums };

export interface VerifyOptions {
  /** only these units (tenant keys or H3 cells); default every unit seen on the source or a shard */
  units?: readonly string[];
  /** only these tables (`schema.table` or the configured name) */
  tables?: readonly string[];
  /** checksum queries in flight at once, over all servers; default the number of shards + 1 */
  concurrency?: number;
  /**
   * After cutover: do not touch the source. Checks misplaced and duplicated rows, reference tables
   * (identical across the shards) and schema drift across the shards alone.
   */
  placementOnly?: boolean;
  onEvent?: (e: VerifyEvent) => void;
}

export type VerifyEvent = { type: 'start'; servers: string[]; tables: number; placementsFrom: PlacementSource } | ScanEvent;

/** Where each unit's shard came from: the catalog's placements, or (none recorded) the router. */
export type PlacementSource = 'catalog' | 'routing';

/** One thing that differs. Every finding names the table and shard(s) where it is, so a person can act. */
export type Finding =
  | {
      kind: 'mismatch';
      unit: string;
      table: string;
      shard: string;
      source: Sums;
      target: Sums;
    }
  | {
      kind: 'misplaced';
      table: string;
      shard: string;
      rows: number;
      /** each unit with rows here, the rows, and the shard it belongs to */
      units: { unit: string; rows: number; home: string; unplaced?: true }[];
    }
  | {
      kind: 'duplicated';
      unit: string;
      home: string;
      /** the catalog has no placement of the unit: `home` is its route */
      unplaced?: true;
      /** every shard holding rows of the unit, home included, with its row count and tables */
      shards: { shard: string; rows: number; tables: string[] }[];
    }
  | { kind: 'orphans'; table: string; shard: string; rows: number }
  | {
      /** a row of a table with several routes whose copies are not where its units live, or differ */
      kind: 'copies';
      table: string;
      /** the row's primary key as text: `id=5` */
      key: string;
      units: string[];
      /** the shards its units live on: the row must be on each, once */
      expected: string[];
      /** missing: not on a shard it must be on; unexpected: on a shard none of its units lives on; differs: not as on the source (placement-only: the copies disagree) */
      shards: { shard: string; state: 'missing' | 'unexpected' | 'differs' }[];
    }
  | {
      kind: 'reference';
      table: string;
      shard: string;
      /** 'source', or the shards the majority of shards agree with */
      expectedFrom: string;
      expected: Sums;
      actual: Sums;
    }
  | { kind: 'drift'; table: string; shard: string; message: string; blocking: boolean };

/** A server that could not be read (unreachable, a query failed): verify is incomplete for it. */
export interface ServerError {
  server: string;
  message: string;
}

/** One table on one shard: what was compared and whether it held. A JUnit testcase each. */
export interface TableCheck {
  table: string;
  shard: string;
  kind: 'sharded' | 'reference';
  /** units whose rows were found on this shard in this table */
  units: number;
  rows: number;
  /** false when the schema differs so much (missing column, other type) that the data was not compared */
  compared: boolean;
  ok: boolean;
  /** time of its query on this shard */
  seconds: number;
}

export interface VerifyResult {
  ok: boolean;
  mode: 'full' | 'placement-only';
  placementsFrom: PlacementSource;
  /** the config file, for the fix commands in the report */
  configFile: string;
  seconds: number;
  /** distinct units seen (source and shards) */
  units: number;
  tables: string[];
  shards: { shard: string; units: number; rows: number; problems: number; error?: string }[];
  checks: TableCheck[];
  findings: Finding[];
  errors: ServerError[];
  /** tables with several routes: their rows on the source and how many live on more than one shard */
  crossShard: { table: string; rows: number; crossShard: number }[];
  /** things worth knowing that are not differences (e.g. the catalog could not be read) */
  warnings: string[];
}
