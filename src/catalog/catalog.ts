/**
 * src/catalog/: the catalog, the one door to the `shardctl` schema on the catalog database.
 *  - Every SQL statement on a catalog table lives in this folder (the tables: schema.ts and the
 *    migrations it imports, and throttle.ts); test/catalog-door.test.ts fails on one outside it.
 *  - Every catalog session opens here (run.ts): through `withRun` with a lock kind, `run` (the run
 *    lock and a runs row), `cutover` (one cutover, rollback, abandon or finish at a time) or `none`;
 *    or through `withCatalogSession` (no lock, creates nothing: plan's and verify's reads, the
 *    throttle flag). Two connect by hand, read-only and for a reason: health's probe, bounded by its
 *    --timeout (health/session.ts), and the live router's LISTEN connection, held open
 *    (live-routing/live-router.ts).
 *  - Every advisory lock key, on the catalog and elsewhere, is in locks.ts.
 * The shards and the monolith have a `shardctl` schema too, which is not the catalog's: its SQL
 * stays with what installs and uses it there: the write fence's guard (fence/unit-guard.ts,
 * fence/unit-fence.ts, rebalance/read-only.ts: fenced_units, fence_epoch, guard, key functions), the
 * table fences (fence/source-fence.ts, fence/server-fence.ts), the stream state (stream/positions.ts,
 * stream/apply.ts, stream/rewrite.ts: follow_position, follow_stash, follow_dirty,
 * follow_relfiles; read by online/lag-gate.ts and health/follower.ts, health/reverse.ts on the
 * shards and the monolith), H3 in SQL (cells/h3-sql.ts) and migrate's staged cells
 * (tables/staged-cells.ts, on the source).
 */
import { hostname } from 'node:os';
import type pg from 'pg';
import { blockedError, UserError } from '../errors.js';
import { redactText } from '../redact.js';
import { connect, type Endpoint, withTransaction } from '../db/connect.js';
import { CATALOG_VERSION, MIGRATIONS } from './schema.js';

import { CUTOVER_LOCK, LOCK_KEY, SCHEMA_LOCK } from './locks.js';

/** One advisory lock key for every mutating command (two migrations at once would race on shards): locks.ts. */
export { LOCK_KEY };

export interface Run {
  readonly id: number;
  readonly command: string;
}

/**
 * The catalog connection of one command run. Mutating commands call `lock()` first: it takes a
 * session-level advisory lock held until `close()`, so a second run is refused and a crashed run
 * (its session gone) releases it by itself.
 */
export class Catalog {
  private constructor(
    readonly client: pg.Client,
    readonly endpoint: Endpoint,
  ) {}

  static async open(url: string, opts: { create?: boolean } = {}): Promise<Catalog> {
    const endpoint = { label: 'catalog', url };
    const client = await connect(endpoint);
    const catalog = new Catalog(client, endpoint);
    try {
      if (opts.create !== false) await catalog.migrate();
    } catch (e) {
      await client.end().catch(() => undefined);
      throw e;
    }
    return catalog;
  }

  /** Creates or upgrades the schema; refuses a catalog written by a newer shardctl. */
  private async migrate(): Promise<void> {
    const c = this.client;
    const exists = await c.query(`SELECT to_regclass('shardctl.meta') IS NOT NULL AS ok`);
    let version = 0;
    if (exists.rows[0].ok) {
      const r = await c.query(`SELECT value FROM shardctl.meta WHERE key = 'schema_version'`);
      version = Number(r.rows[0]?.value ?? 0);
    }
    if (version > CATALOG_VERSION) {
      throw blockedError(`catalog schema version ${version} is newer than this shardctl understands (${CATALOG_VERSION})`, {
        hint: 'upgrade shardctl',
      });
    }
    if (version === CATALOG_VERSION) return;
    await withTransaction(c, async () => {
      // Serialise concurrent first runs: only one creates the schema.
      await c.query('SELECT pg_advisory_xact_lock($1)', [String(SCHEMA_LOCK)]);
      await c.query('CREATE SCHEMA IF NOT EXISTS shardctl');
      const again = await c.query(`SELECT to_regclass('shardctl.meta') IS NOT NULL AS ok`);
      const current = again.rows[0].ok
        ? Number((await c.query(`SELECT value FROM shardctl.meta WHERE key = 'schema_version'`)).rows[0]?.value ?? 0)
        : 0;
      for (let v = current; v < CATALOG_VERSION; v++) await c.query(MIGRATIONS[v]!);
      await c.query(
        `INSERT INTO shardctl.meta (key, value) VALUES ('schema_version', $1)
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`,
        [String(CATALOG_VERSION)],
      );
    });
  }

  /** Takes the run lock and records the run; exit 3 naming the holder when another run has it. */
  async lock(command: string, args: Record<string, unknown>): Promise<Run> {
    const got = await this.client.query('SELECT pg_try_advisory_lock($1) AS ok', [String(LOCK_KEY)]);
    if (!got.rows[0].ok) {
      const holder = await this.client.query(
        `SELECT r.id, r.command, r.pid, r.host, r.started_at
           FROM shardctl.runs r WHERE r.status = 'running' ORDER BY r.id DESC LIMIT 1`,
      );
      const h = holder.rows[0];
      const who = h
        ? `${h.command} (run ${h.id}, pid ${h.pid} on ${h.host}, started ${new Date(h.started_at).toISOString()})`
        : 'another session';
      throw blockedError(`another shardctl run holds the catalog lock: ${who}`, {
        hint: 'wait for it to finish; a run that died releases the lock by itself',
      });
    }
    // Runs still marked running were cut off (we hold the lock, so they are not running now).
    await this.client.query(
      `UPDATE shardctl.runs SET status = 'interrupted', finished_at = now() WHERE status = 'running'`,
    );
    const r = await this.client.query(
      `INSERT INTO shardctl.runs (command, args, pid, host) VALUES ($1, $2, $3, $4) RETURNING id`,
      [command, JSON.stringify(args), process.pid, hostname()],
    );
    return { id: Number(r.rows[0].id), command };
  }

  /** Takes the cutover lock for this session (locks.ts), or fails with exit 3 and `busy` when another holds it. */
  async lockCutover(busy: string): Promise<void> {
    const got = await this.client.query('SELECT pg_try_advisory_lock($1) AS ok', [String(CUTOVER_LOCK)]);
    if (!got.rows[0].ok) throw blockedError(busy);
  }

  /**
   * Fails with exit 3 unless this session still holds the run lock. A dropped catalog connection
   * frees the lock, and so does a pooler that hands the session to someone else: a run that went
   * on writing after that could race a second run. Mutating steps call this before journaling.
   */
  async assertLocked(): Promise<void> {
    let held = false;
    let why = 'the lock is no longer held by this session';
    try {
      const r = await this.client.query(
        `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
                          AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = $1) AS held`,
        [String(LOCK_KEY)],
      );
      held = r.rows[0].held === true;
    } catch (e) {
      why = `the catalog connection failed: ${redactText(e instanceof Error ? e.message : String(e))}`;
    }
    if (!held) throw catalogLost(why);
  }

  async finish(run: Run, status: 'ok' | 'failed' | 'interrupted', summary: unknown): Promise<void> {
    await this.client.query(`UPDATE shardctl.runs SET status = $2, finished_at = now(), summary = $3 WHERE id = $1`, [
      run.id,
      status,
      JSON.stringify(summary, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)),
    ]);
  }

  async close(): Promise<void> {
    await this.client.end().catch(() => undefined);
  }
}

/**
 * The run lost its catalog lock: it stops at once, without touching the shards further (another
 * run may hold the lock now). Units in flight stay as the journal last recorded them.
 */
export function catalogLost(why: string): UserError {
  return blockedError(`lost the catalog lock (${why}); stopped before the next journaled step`, {
    hint: 'units in flight stay fenced as journaled; run the same command again to complete them',
  });
}

export function isCatalogLost(e: unknown): boolean {
  return e instanceof UserError && e.message.startsWith('lost the catalog lock');
}
