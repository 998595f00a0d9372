/**
 * `npm run bench -- --fixture pgbench`: the tables of `pgbench -i` at pgbench's own volume (--scale N
 * = N branches, the tenants: 10 tellers and 100,000 accounts each, as `pgbench -i -s N` makes), plus
 * an append-only `pgbench_history` WITHOUT a primary key (HISTORY rows per branch, one in eight
 * logged twice: identical rows). The shape the issue asks for: a wide table, few tenants, a table
 * without a primary key.
 *
 * The generic fixture (harness/fixtures/pgbench.ts) is sized for tests (100 accounts per branch) and
 * generated in Node; here the rows are made on the source server with generate_series, as pgbench
 * itself does, which loads a million accounts in seconds. Each table also gets the secondary index a
 * DBA sharding by branch would have (bid, aid), on the source and on every shard alike.
 */
import type { Config } from '../src/index.js';
import { withClient } from '../src/index.js';
import { shardEndpoint, sourceEndpoint } from '../src/index.js';

export const ACCOUNTS_PER_BRANCH = 100_000;
export const HISTORY_PER_BRANCH = 20_000;

const INDEXES = [
  'CREATE INDEX pgbench_accounts_bid ON pgbench_accounts (bid)',
  'CREATE INDEX pgbench_history_bid_aid ON pgbench_history (bid, aid)',
];

/** Replaces the staged (test-sized) rows by `branches` branches of pgbench volume; adds the secondary indexes everywhere. */
export async function fillPgbench(config: Config, branches: number): Promise<number> {
  const s = branches;
  const rows = await withClient(sourceEndpoint(config), async (c) => {
    await c.query('TRUNCATE pgbench_branches, pgbench_tellers, pgbench_accounts, pgbench_history');
    await c.query(`INSERT INTO pgbench_branches SELECT b, 0, NULL FROM generate_series(1, ${s}) b`);
    await c.query(`INSERT INTO pgbench_tellers SELECT t, (t - 1) / 10 + 1, 0, NULL FROM generate_series(1, ${s * 10}) t`);
    await c.query(`INSERT INTO pgbench_accounts SELECT a, (a - 1) / ${ACCOUNTS_PER_BRANCH} + 1, 0, '' FROM generate_series(1, ${s * ACCOUNTS_PER_BRANCH}) a`);
    // a teller and an account of any branch, as pgbench's TPC-B-like script logs them
    await c.query(
      `INSERT INTO pgbench_history (tid, bid, aid, delta, mtime, filler)
       SELECT 1 + (h * 7919) % ${s * 10}, 1 + (h - 1) / ${HISTORY_PER_BRANCH}, 1 + (h * 104729) % ${s * ACCOUNTS_PER_BRANCH},
              (h * 31) % 10001 - 5000, timestamp '2024-05-01' + h * interval '1 ms', NULL
         FROM generate_series(1::bigint, ${s * HISTORY_PER_BRANCH}) h`,
    );
    await c.query('INSERT INTO pgbench_history SELECT * FROM pgbench_history WHERE (aid + tid) % 8 = 0');
    for (const i of INDEXES) await c.query(i);
    await c.query('VACUUM ANALYZE pgbench_branches, pgbench_tellers, pgbench_accounts, pgbench_history');
    const n = await c.query<{ n: string }>(
      `SELECT (SELECT count(*) FROM pgbench_branches) + (SELECT count(*) FROM pgbench_tellers)
            + (SELECT count(*) FROM pgbench_accounts) + (SELECT count(*) FROM pgbench_history) AS n`,
    );
    return Number(n.rows[0]!.n);
  });
  await Promise.all(config.shards.map((sh) => withClient(shardEndpoint(config, sh.id), async (c) => {
    for (const i of INDEXES) await c.query(i);
  })));
  return rows;
}
