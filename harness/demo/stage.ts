import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { withClient, loadConfig, type Config } from '../../src/index.js';
import { stringify } from 'yaml';
import { latLngToCell, cellToParent } from 'h3-js';
import { createFixtureSchema, fixtureTables, loadFixture, METROS, type FixtureKind } from '../fixtures/index.js';
import { startFleet, type Fleet, type FleetOptions, type ServerHandle } from '../fleet/index.js';

export interface StageOptions {
  kind: FixtureKind;
  shards: number;
  replicas?: number;
  scale: number;
  seed?: number;
  /** schema on these shard indexes is NOT created (tests of a missing table) */
  skipSchemaOn?: number[];
  fleet?: Partial<FleetOptions>;
  onProgress?: (table: string, rows: number) => void;
  /**
   * 'inline' puts passwords in the config's URLs (tests); 'pgpass' keeps them out of the config and
   * every output, in a password file beside it (PGPASSFILE), as a DBA would.
   */
  credentials?: 'inline' | 'pgpass';
}

export interface Stage {
  fleet: Fleet;
  /** the config file written into the fleet directory */
  configPath: string;
  config: Config;
  /** the fixture's load counts per table */
  rows: Record<string, number>;
  /** the password file, with credentials: 'pgpass' (export PGPASSFILE=… to use the config) */
  pgpass?: string;
  stop(opts?: { keep?: boolean }): Promise<void>;
}

/**
 * A local fleet ready for shardctl: a monolith loaded with a fixture, empty shards with the same
 * schema, and a shardctl.yaml describing it. Used by `shardctl demo`, the tests and the benchmark.
 */
export async function stageFleet(opts: StageOptions): Promise<Stage> {
  // The monolith runs with wal_level=logical so `migrate --follow` (online migration) works on it.
  const serverSettings = { ...opts.fleet?.serverSettings, source: { wal_level: 'logical', ...opts.fleet?.serverSettings?.source } };
  const fleet = await startFleet({ shards: opts.shards, replicas: opts.replicas ?? 0, ...opts.fleet, serverSettings });
  try {
    const rows = await withClient({ label: 'source', url: fleet.source.url() }, async (c) => {
      await createFixtureSchema(c, opts.kind);
      return (await loadFixture(c, opts.kind, { scale: opts.scale, seed: opts.seed, onProgress: opts.onProgress })).rows;
    });
    await Promise.all(
      fleet.shards.map((s, i) => (opts.skipSchemaOn?.includes(i) ? undefined : withClient({ label: `shard ${s.id}`, url: s.primary.url() }, (c) => createFixtureSchema(c, opts.kind)))),
    );
    const configPath = join(fleet.dir, 'shardctl.yaml');
    const inline = opts.credentials !== 'pgpass';
    let pgpass: string | undefined;
    if (!inline) {
      pgpass = join(fleet.dir, 'pgpass');
      writeFileSync(pgpass, `127.0.0.1:*:*:${fleet.source.user}:${fleet.source.password.replace(/[:\\]/g, '\\$&')}\n`, { mode: 0o600 });
      process.env.PGPASSFILE = pgpass;
    }
    writeFileSync(configPath, await configYaml(fleet, opts.kind, inline), { mode: 0o600 });
    return { fleet, configPath, config: loadConfig(configPath), rows, pgpass, stop: (o) => fleet.stop(o) };
  } catch (e) {
    await fleet.stop();
    throw e;
  }
}

const JUMP_KEYS = { pos: 'restaurant_id', rental: 'store_id', pgbench: 'bid' } as const;

/** The shardctl.yaml for a fleet: jump on the tenant key (POS, rental, pgbench); h3 with one metro per shard, round-robin, for location. */
export async function configYaml(fleet: Fleet, kind: FixtureKind, inline = true): Promise<string> {
  const url = (s: ServerHandle) => (inline ? s.url() : withoutPassword(s.url()));
  const shards = fleet.shards.map((s) => ({
    id: s.id,
    primary: url(s.primary),
    ...(s.replicas.length ? { replicas: s.replicas.map(url) } : {}),
  }));
  const strategy =
    kind !== 'location'
      ? { kind: 'jump', key: JUMP_KEYS[kind] }
      : {
          kind: 'h3',
          defaultShard: fleet.shards[0]!.id,
          mapping: metroCells().map((m, i) => ({ cell: m.cell, shard: fleet.shards[i % fleet.shards.length]!.id, region: m.name })),
        };
  // Every server of a local fleet shares the machine's cores with the tool itself: a probe right after
  // a copy can take longer than a dedicated server's 250 ms warning level without anything being wrong.
  const health = { latencyMs: { warning: 1000, critical: 5000 } };
  const doc = { source: url(fleet.source), strategy, shards, tables: await fixtureTables(kind), health };
  return `# written by shardctl for a local embedded fleet in ${fleet.dir}\n${stringify(doc, { flowCollectionPadding: true })}`;
}

/** The resolution-3 cell of each metro centre of the location fixture (deduplicated). */
function metroCells(): { cell: string; name: string }[] {
  const seen = new Map<string, string>();
  for (const m of METROS) {
    const cell = cellToParent(latLngToCell(m.lat, m.lng, 12), 3);
    if (!seen.has(cell)) seen.set(cell, m.name);
  }
  return [...seen].map(([cell, name]) => ({ cell, name }));
}


export function withoutPassword(url: string): string {
  const u = new URL(url);
  u.password = '';
  return u.toString();
}
