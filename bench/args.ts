import { parseArgs } from 'node:util';

/** What `npm run bench -- …` was asked to do. */
export interface BenchArgs {
  /** pos: the copy paths against a raw baseline; location: the H3 routes against jump on the same rows, at two scales */
  fixture: 'pos' | 'location' | 'pgbench' | 'plan' | 'many' | 'cities' | 'guards';
  /** POS fixture scale: 1 ≈ 1000 restaurants ≈ 1.2 GB; default 0.85 ≈ 1 GB */
  scale: number;
  shards: number;
  /** streams in flight, for the baseline and migrate alike (migrate's default is 2) */
  concurrency: number;
  /** migrate's rows per batch (MigrateOptions.batchRows); undefined = the engine's default */
  batchRows?: number;
  /** rows of orders + order_items the row-by-row phase inserts (whole restaurants, so a little more) */
  sampleRows: number;
  /** how many times the baseline / migrate --no-verify / migrate cycle runs (a last baseline always follows) */
  repeat: number;
  /** seconds of write load in the online phase's measuring windows */
  onlineSeconds: number;
  /** only the online phase (after the fixture load): the copy phases take most of a default run */
  onlineOnly: boolean;
  /** only the moves phase (after the fixture load and a migrate): rebalance's write outage online vs offline */
  movesOnly: boolean;
  /** moves phase: the rows the big tenant is grown to (issue 25: 2,100,000) */
  movesRows: number;
  /** moves phase: also a tenant 10 × movesRows (slow: off by default) */
  movesTenfold: boolean;
  /** servers with fsync and full_page_writes on (default; --fast gives the test fleet's non-durable settings) */
  durable: boolean;
  /** extra server settings for every server of the fleet (`--set name=value`, repeatable), for experiments */
  settings: Record<string, string>;
  json: boolean;
  help: boolean;
}

export const USAGE = `npm run bench -- [options]

  --fixture NAME    pos (default): raw baseline, migrate with and without checksums, verify, row by row;
                    location: each H3 route against jump on the same table, at --scale and 4 × --scale;
                    pgbench: pgbench's tables at pgbench volume (a wide table, few tenants, an append-only
                    history without a primary key): raw baseline, migrate with and without checksums, verify,
                    and issue 15's levers each against migrate (text COPY, --no-indexes-after);
                    plan: \`plan\` for 1,000,000 tenants (jump) and 50,000 cells (h3), timed, RSS sampled;
                    many: cost per unit (issue 26): the same rows as 20 tenants and as rows/5 tenants,
                    migrate with checksums, alternated --repeat times; PASS/FAIL on time and peak RSS;
                    cities: the world's cities (≥ 10,000 people) ×4, ~5,500 cells, by jump (a tenant per
                    cell), by lat/lng and by H3 index column; PASS/FAIL: lat/lng ≥ 0.5 × jump;
                    guards: what the shards' write guards (fence + route guard) cost an application's
                    INSERT/UPDATE after the split, per row, guarded vs the trigger disabled, for a jump
                    table, a via child and a lat/lng table (--repeat rounds, at least 3); PASS/FAIL per ratio
  --scale N         POS fixture scale (1 ≈ 1000 restaurants ≈ 1.2 GB on disk; default 0.85 ≈ 1 GB);
                    location: 1 ≈ 100,000 profiles, 500,000 locations, 200,000 bumps (default 0.05);
                    pgbench: branches, as pgbench -s (100,000 accounts each; default 8);
                    many: rows (default 1000000);
                    guards: single-row transactions per operation and round (default 2000)
  --shards N        shards (default 4)
  --concurrency N   streams in flight for the baseline and migrate (default 2)
  --batch-rows N    migrate's rows per batch (default: the engine's, 1000000)
  --sample-rows N   rows of orders/order_items inserted row by row (default 20000)
  --repeat N        baseline / migrate --no-verify / migrate cycles (default 1; a final baseline always runs)
  --online-seconds N  seconds of write load in each window of the online phase (default 15)
  --online-only     stage the fleet, then run only the online phase (migrate --follow, cutover); with
                    --fixture pgbench its load is pgbench's TPC-B-like script from 4 clients, the
                    follower's backlog rate is set against it (target >= 2x), then an UPDATE of every account
  --moves-only      stage the fleet, migrate, then run only the moves phase (the biggest tenant moved
                    online, then back offline, under a writer: the write outage of each)
  --moves-rows N    moves phase: also grow a tenant to N rows and move it online under the writer
                    (default 2100000; 0 skips it); PASS/FAIL on the longest gap in the writer's commits
  --moves-tenfold   moves phase: and a tenant of 10 × --moves-rows (slow: off by default)
  --fast            run the servers with fsync=off and full_page_writes=off, as the test fleet does (default:
                    durable, as production servers are; without fsync a commit costs nothing, which
                    flatters the row-by-row autocommit phase)
  --set NAME=VALUE  a PostgreSQL setting for every server of the fleet (repeatable), e.g.
                    --set max_parallel_workers_per_gather=0
  --json            the result as JSON on stdout (progress stays on stderr)

Exit status: 0 when every phase ran (whether or not the targets were met), 1 on an error, 130 on Ctrl-C.`;

/** Parses argv; throws an Error with a readable message on bad input. */
export function parseBenchArgs(argv: readonly string[]): BenchArgs {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      fixture: { type: 'string', default: 'pos' },
      scale: { type: 'string' },
      shards: { type: 'string', default: '4' },
      concurrency: { type: 'string', default: '2' },
      'batch-rows': { type: 'string' },
      'sample-rows': { type: 'string', default: '20000' },
      repeat: { type: 'string', default: '1' },
      'online-seconds': { type: 'string', default: '15' },
      'online-only': { type: 'boolean', default: false },
      'moves-only': { type: 'boolean', default: false },
      'moves-rows': { type: 'string', default: '2100000' },
      'moves-tenfold': { type: 'boolean', default: false },
      fast: { type: 'boolean', default: false },
      set: { type: 'string', multiple: true, default: [] },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const num = (name: string, v: string, ok: (n: number) => boolean, what: string) => {
    const n = Number(v);
    if (!/^\s*[0-9.eE+-]+\s*$/.test(v) || !Number.isFinite(n) || !ok(n)) throw new Error(`--${name} must be ${what}, got ${JSON.stringify(v)}`);
    return n;
  };
  const int = (n: number) => Number.isInteger(n);
  const fixture = values.fixture!;
  if (fixture !== 'pos' && fixture !== 'location' && fixture !== 'pgbench' && fixture !== 'plan' && fixture !== 'many' && fixture !== 'cities' && fixture !== 'guards') {
    throw new Error(`--fixture must be pos, location, pgbench, plan, many, cities or guards, got ${JSON.stringify(fixture)}`);
  }
  const scaleOk =
    fixture === 'pgbench' ? (n: number) => int(n) && n >= 1 && n <= 200 : fixture === 'many' ? (n: number) => int(n) && n >= 100 && n <= 100_000_000 : fixture === 'guards' ? (n: number) => int(n) && n >= 100 && n <= 1_000_000 : (n: number) => n > 0 && n <= 20;
  const scaleWhat = fixture === 'pgbench' ? 'a whole number from 1 to 200' : fixture === 'many' ? 'a whole number of rows from 100 to 100000000' : fixture === 'guards' ? 'a whole number of rows from 100 to 1000000' : 'a number in (0, 20]';
  return {
    fixture,
    scale: num('scale', values.scale ?? { pos: '0.85', location: '0.05', pgbench: '8', plan: '1', many: '1000000', cities: '1', guards: '2000' }[fixture], scaleOk, scaleWhat),
    shards: num('shards', values.shards!, (n) => int(n) && n >= 1 && n <= 16, 'a whole number from 1 to 16'),
    concurrency: num('concurrency', values.concurrency!, (n) => int(n) && n >= 1 && n <= 32, 'a whole number from 1 to 32'),
    ...(values['batch-rows'] === undefined ? {} : { batchRows: num('batch-rows', values['batch-rows'], (n) => int(n) && n >= 1, 'a whole number of at least 1') }),
    sampleRows: num('sample-rows', values['sample-rows']!, (n) => int(n) && n >= 100, 'a whole number of at least 100'),
    repeat: num('repeat', values.repeat!, (n) => int(n) && n >= 1 && n <= 10, 'a whole number from 1 to 10'),
    onlineSeconds: num('online-seconds', values['online-seconds']!, (n) => int(n) && n >= 2 && n <= 600, 'a whole number from 2 to 600'),
    onlineOnly: values['online-only']!,
    movesOnly: values['moves-only']!,
    movesRows: num('moves-rows', values['moves-rows']!, (n) => int(n) && n >= 0, 'a whole number of rows'),
    movesTenfold: values['moves-tenfold']!,
    durable: !values.fast,
    settings: Object.fromEntries(
      (values.set ?? []).map((kv) => {
        const m = /^([A-Za-z_][A-Za-z0-9_.]*)=(.*)$/s.exec(kv);
        if (!m) throw new Error(`--set must be NAME=VALUE, got ${JSON.stringify(kv)}`);
        return [m[1]!, m[2]!];
      }),
    ),
    json: values.json!,
    help: values.help!,
  };
}
