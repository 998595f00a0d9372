import { readFileSync, writeFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { stageFleet, type Stage, type StageOptions } from '../../harness/demo/stage.js';
import { sql } from './fleet.js';
import { LEDGER_DDL } from './ledger.js';

export const TENANTS = [1, 2, 3, 4, 5, 6, 7, 8] as const;
const ROWS_PER_TENANT = 200;

export interface LedgerStage extends Stage {
  /** the config as it is on disk now (commands rewrite it: add-shard, pin, failover) */
  reload(): Config;
  /** shard id → primary URL, from the config on disk */
  shardUrls(): Map<string, string>;
  /** pins from the config on disk */
  pins(): Record<string, string>;
}

/**
 * A pgbench fleet of eight tenants (branches) with the ledger table on every server, seeded on the
 * monolith, and a config of the tables with primary keys (ledger, branches, accounts).
 */
export async function stageLedger(opts: Partial<StageOptions> & { shards: number }): Promise<LedgerStage> {
  const stage = await stageFleet({ kind: 'pgbench', scale: 0.8, ...opts });
  const servers = [stage.config.source, ...stage.config.shards.map((s) => s.primary)];
  await Promise.all(servers.map((url) => sql(url, LEDGER_DDL)));
  await sql(
    stage.config.source,
    `INSERT INTO ledger (bid, k, v) SELECT b, b * 100000 + i, i FROM unnest($1::int[]) b, generate_series(1, ${ROWS_PER_TENANT}) i`,
    [TENANTS],
  );
  const doc = parse(readFileSync(stage.configPath, 'utf8'));
  doc.tables = [{ name: 'pgbench_branches' }, { name: 'pgbench_accounts' }, { name: 'ledger' }];
  writeFileSync(stage.configPath, stringify(doc), { mode: 0o600 });
  const reload = () => loadConfig(stage.configPath);
  return {
    ...stage,
    config: reload(),
    reload,
    shardUrls: () => new Map(reload().shards.map((s) => [s.id, s.primary])),
    pins: () => {
      const s = parse(readFileSync(stage.configPath, 'utf8')).strategy;
      return Object.fromEntries(Object.entries(s?.pins ?? {}).map(([k, v]) => [k, String(v)]));
    },
  };
}
