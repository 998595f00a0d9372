// Public shapes of the embedded fleet. Other modules (tests, `shardctl demo`, the benchmark)
// code against these names, so they are kept exactly as agreed.

export interface ServerHandle {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly database: string;
  readonly dataDir: string;
  /** postgres://user:password@127.0.0.1:port/db — contains the password: never log it. */
  url(database?: string): string;
  isRunning(): Promise<boolean>;
  start(): Promise<void>;
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  promote(): Promise<void>;
  query<T = any>(sql: string, params?: unknown[]): Promise<T[]>;
}

export interface FleetShard {
  id: string;
  primary: ServerHandle;
  replicas: ServerHandle[];
}

export interface FleetOptions {
  shards: number;
  replicas?: number;
  database?: string;
  password?: string;
  dir?: string;
  settings?: Record<string, string>;
  serverSettings?: Record<string, Record<string, string>>;
  onLog?: (line: string) => void;
}

export interface Fleet {
  readonly dir: string;
  readonly source: ServerHandle;
  readonly shards: FleetShard[];
  addShard(opts?: { replicas?: number }): Promise<FleetShard>;
  addReplica(shard: FleetShard): Promise<ServerHandle>;
  stop(opts?: { keep?: boolean }): Promise<void>;
}

export interface StartServerOptions {
  name: string;
  /** Parent directory: the server lives in `<dir>/<name>/` (data in `data/`, log, socket). */
  dir: string;
  database?: string;
  password?: string;
  settings?: Record<string, string>;
  onLog?: (line: string) => void;
}

export interface CreateReplicaOptions {
  name: string;
  /** Parent directory, as for startServer. */
  dir: string;
  /** Extra GUCs on top of the ones copied from the primary. */
  settings?: Record<string, string>;
  onLog?: (line: string) => void;
}
