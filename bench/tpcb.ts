import pg from 'pg';

/**
 * pgbench's built-in TPC-B-like script as a write load (the embedded servers ship no pgbench binary),
 * `clients` connections at once, each running it back to back (`pauseMs` between transactions):
 *   UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
 *   SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
 *   UPDATE pgbench_tellers SET tbalance = tbalance + :delta WHERE tid = :tid;
 *   UPDATE pgbench_branches SET bbalance = bbalance + :delta WHERE bid = :bid;
 *   INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (:tid, :bid, :aid, :delta, CURRENT_TIMESTAMP);
 * with pgbench's random choices (aid over all accounts, bid over the branches, tid over the tellers,
 * delta in -5000..5000): four changed rows a transaction. A refused write (a cutover's fence) is
 * counted and the transaction tried again after a pause, until stop().
 */
export interface TpcbLoad {
  stop(): Promise<{ commits: number; changes: number; refused: number }>;
}

export function startTpcb(url: string, o: { clients: number; branches: number; accountsPerBranch: number; pauseMs?: number; seed?: number }): TpcbLoad {
  let running = true;
  let commits = 0;
  let refused = 0;
  let seed = o.seed ?? 1;
  // a small deterministic generator: runs compare the same sequence of choices
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return Math.floor((seed / 2147483648) * n);
  };
  const client = async () => {
    const db = new pg.Client({ connectionString: url, application_name: 'bench tpcb' });
    await db.connect();
    try {
      while (running) {
        const aid = 1 + random(o.branches * o.accountsPerBranch);
        const bid = 1 + random(o.branches);
        const tid = 1 + random(o.branches * 10);
        const delta = random(10001) - 5000;
        try {
          await db.query('BEGIN');
          await db.query('UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2', [delta, aid]);
          await db.query('SELECT abalance FROM pgbench_accounts WHERE aid = $1', [aid]);
          await db.query('UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2', [delta, tid]);
          await db.query('UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2', [delta, bid]);
          await db.query('INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP)', [tid, bid, aid, delta]);
          await db.query('COMMIT');
          commits++;
        } catch {
          await db.query('ROLLBACK').catch(() => undefined);
          refused++; // a fence (or a deadlock between two clients): tried again
          await sleep(50);
        }
        if (o.pauseMs) await sleep(o.pauseMs);
      }
    } finally {
      await db.end().catch(() => undefined);
    }
  };
  const all = Promise.all(Array.from({ length: o.clients }, client));
  return {
    async stop() {
      running = false;
      await all;
      return { commits, changes: commits * 4, refused };
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
