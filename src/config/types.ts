/** The validated, readonly configuration the engine works from. Nothing else reaches the engine. */

export interface ShardConfig {
  readonly id: string;
  readonly primary: string;
  readonly replicas: readonly string[];
  /** Database size considered full, for `health` (bytes); undefined = not checked. */
  readonly capacityBytes?: number;
}

export interface JumpStrategy {
  readonly kind: 'jump';
  /** Default tenant key column of sharded tables. */
  readonly key: string;
  /** tenant → shard id, consulted before the hash. */
  readonly pins: Readonly<Record<string, string>>;
}

export interface CellMapping {
  readonly cell: string;
  readonly shard: string;
  readonly region?: string;
  readonly capacityStatus?: 'active' | 'full' | 'read-only';
}

export interface H3Strategy {
  readonly kind: 'h3';
  readonly indexResolution: number;
  readonly shardResolution: number;
  readonly defaultShard: string;
  readonly mapping: readonly CellMapping[];
}

export type Strategy = JumpStrategy | H3Strategy;

/** How a table's rows find their unit. */
export type TableRoute =
  | { readonly kind: 'key'; readonly column: string }
  | { readonly kind: 'latlng'; readonly lat: string; readonly lng: string }
  | { readonly kind: 'cell'; readonly column: string; readonly resolution: number }
  | { readonly kind: 'via'; readonly column: string; readonly parent: string; readonly parentColumn: string }
  | { readonly kind: 'reference' };

/** A route a row of a table with several routes can take: computed from the row's own columns. */
export type UnitRoute = Extract<TableRoute, { kind: 'key' | 'latlng' | 'cell' }>;

export interface TableConfig {
  readonly schema: string;
  readonly name: string;
  /** the table's route; for a table with several routes, the first of them */
  readonly route: TableRoute;
  /**
   * Set only for a table declared with several `routes` (two or more): a row belongs to the unit of
   * every route, so it lives (once) on every shard one of them leads to — a cross-shard row when
   * they lead to different shards.
   */
  readonly routes?: readonly UnitRoute[];
  /**
   * Foreign keys (constraint names, on the table or on its partitions) whose parent row may belong to
   * another unit. shardctl leaves them off the shards (they must be absent there) and does not check
   * them; the monolith's schema analysis (`plan`) counts the rows that cross.
   */
  readonly crossingKeys: readonly string[];
}

export interface HealthLevels {
  readonly warning: number;
  readonly critical: number;
}

export interface HealthConfig {
  readonly timeoutMs: number;
  readonly latencyMs: HealthLevels;
  readonly lagSeconds: HealthLevels;
  readonly lagBytes: HealthLevels;
  readonly slotRetainedBytes: HealthLevels;
  /** fractions of max_connections */
  readonly connections: HealthLevels;
  /** fractions of a shard's capacityBytes */
  readonly capacity: HealthLevels;
  /** age of the oldest prepared transaction (two-phase commit left in doubt) */
  readonly preparedSeconds: HealthLevels;
}

export interface Config {
  /** The file it came from (for messages), or '<inline>'. */
  readonly file: string;
  readonly source: string;
  readonly catalog: string;
  readonly strategy: Strategy;
  readonly shards: readonly ShardConfig[];
  /** Parents first (FK order). */
  readonly tables: readonly TableConfig[];
  readonly health: HealthConfig;
}
