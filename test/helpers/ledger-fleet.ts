import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import pg from 'pg';
import { parse, stringify } from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { stageFleet, type Stage, type StageOptions } from '../../harness/demo/stage.js';
import { sql } from './fleet.js';
import { assertLedger, LEDGER_DDL, LedgerWriter, ownerOf } from './ledger.js';

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

/**
 * A ledger writer (started) that routes every write through the catalog's SQL function
 * (`shardctl.shard_for_key`), as an application in any language would; `close()` stops it and
 * ends its catalog session.
 */
export async function catalogRoutedWriter(stage: LedgerStage): Promise<{ writer: LedgerWriter; close: () => Promise<void> }> {
  const catalog = new pg.Client({ connectionString: stage.config.catalog });
  await catalog.connect();
  const urls = new Map<string, string>();
  const route = async (bid: number) => {
    const shard = (await catalog.query('SELECT shardctl.shard_for_key($1) AS s', [String(bid)])).rows[0].s as string;
    if (!urls.has(shard)) for (const [id, url] of stage.shardUrls()) urls.set(id, url);
    return urls.get(shard) ?? assert.fail(`the catalog routes tenant ${bid} to ${shard}, a shard not in the config`);
  };
  const writer = (await LedgerWriter.fromTable(stage.config.source, route, TENANTS)).start();
  return {
    writer,
    close: async () => {
      await writer.stop().catch(() => undefined);
      await catalog.end().catch(() => undefined);
    },
  };
}

/** The oracle's routing by the config on disk now: md5 → jump over its shards, its pins first (helpers/ledger.ts ownerOf). */
export const ledgerOwner = (stage: LedgerStage) => {
  const ids = stage.reload().shards.map((s) => s.id);
  const pins = stage.pins();
  return (bid: number) => ownerOf(bid, ids, pins);
};

/** Pauses the writer, proves the fleet holds exactly its acknowledged writes where they belong (assertLedger), and resumes it. */
export async function checkLedger(stage: LedgerStage, writer: LedgerWriter): Promise<void> {
  await writer.pause();
  try {
    await assertLedger(stage.reload().shards.map((s) => ({ id: s.id, url: s.primary })), writer, ledgerOwner(stage));
  } finally {
    writer.start();
  }
}
