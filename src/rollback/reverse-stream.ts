import type pg from 'pg';
import type { Config } from '../config/types.js';
import { connect, withClient } from '../db/connect.js';
import { shardEndpoint, sourceEndpoint } from '../db/endpoints.js';
import { clearShardState, prepareShardState, readPosition, writePosition } from '../stream/positions.js';
import { lsn, lsnText, ZERO_LSN, type Lsn } from '../db/lsn.js';
import { sendControl } from '../stream/control.js';
import { REVERSE_STREAM, reverseKey } from '../stream/names.js';
import { checkSourceForFollow } from '../stream/preflight.js';
import { dropStream, ensurePublication, slotState } from '../stream/slot.js';
import { blockedError } from '../errors.js';
import { deleteOnline, openOnline } from '../catalog/online.js';
import { liftSourceFence } from '../fence/source-fence.js';
import { recordForeignWrites, recordingWrites, stopRecordingWrites } from '../stream/foreign-writes.js';
import type { TableModel } from '../tables/model.js';
import { qualifiedName } from '../tables/scope.js';

/**
 * The rollback window's reverse stream (shards → monolith), opened by `cutover --reverse`:
 * a publication and a logical slot of the configured tables on EVERY shard, and on the monolith
 * each shard's start position (shardctl.follow_position, key `shardctl_reverse:<shard>`), from
 * which `rollback --follow` applies that shard's changes to the monolith.
 */

/** Before the cutover fences anything: every shard can keep a slot (wal_level, free slots, keys). */
export async function checkShardsForReverse(config: Config, tables: readonly string[]): Promise<void> {
  for (const s of config.shards) await withClient(shardEndpoint(config, s.id), (c) => checkSourceForFollow(c, tables, REVERSE_STREAM, `shard ${s.id}`));
}

/**
 * The monolith's follow_dirty key for writes to its configured tables during the window by anyone
 * but the reverse follower (a DBA through the fence's bypass): recorded by stream/foreign-writes.ts's
 * trigger, so rollback proves those rows too (changed-back.ts).
 */
export const REVERSE_FOREIGN = REVERSE_STREAM.slot;

/**
 * Opens the reverse stream. Called by cutover after its verify, while the monolith is fenced and
 * the applications still write to it, not to the shards: every shard then equals the monolith's
 * final state, and each slot starts at a point of its shard before any application write there,
 * so nothing written on a shard is missed. The monolith records, from here on, every write to a
 * configured table that is not the reverse follower's (REVERSE_FOREIGN). A rerun (the cutover
 * crashed before it recorded anything) starts the slots and the records over: until the cutover is
 * recorded no application writes to a shard.
 */
export async function openReverse(config: Config, models: readonly TableModel[], timeoutMs: number): Promise<Map<string, Lsn>> {
  const tables = models.map((t) => t.name);
  const starts = new Map<string, Lsn>();
  await Promise.all(
    config.shards.map((s) =>
      withClient(shardEndpoint(config, s.id), async (c) => {
        await dropStream(c, REVERSE_STREAM);
        await ensurePublication(c, REVERSE_STREAM, tables);
        // the slot waits for the shard's transactions in flight (its consistent point): bounded
        await c.query(`SET statement_timeout = ${Math.max(1000, Math.round(timeoutMs))}`);
        const r = await c.query(`SELECT lsn::text AS lsn FROM pg_create_logical_replication_slot($1, 'pgoutput')`, [REVERSE_STREAM.slot]);
        await c.query('RESET statement_timeout');
        starts.set(s.id, lsn(r.rows[0].lsn));
      }),
    ),
  );
  await withClient(sourceEndpoint(config), async (c) => {
    await prepareShardState(c);
    for (const s of config.shards) {
      await clearShardState(c, reverseKey(s.id));
      await writePosition(c, reverseKey(s.id), starts.get(s.id)!);
    }
    await clearShardState(c, REVERSE_FOREIGN);
    // the monolith is fenced (quiet); its readers do not conflict with the trigger's lock: bounded all the same
    await c.query(`SET lock_timeout = ${Math.max(1000, Math.round(timeoutMs))}`);
    await recordForeignWrites(c, REVERSE_FOREIGN, models);
    await c.query('RESET lock_timeout');
  });
  return starts;
}

/**
 * Ends the reverse stream: asks a running `rollback --follow` to stop (a 'stop' message on every
 * shard: it finishes what it applied and exits 0), then drops every shard's slot and publication
 * (ending a follower that did not stop in `waitMs`) and forgets the positions on the monolith.
 * Idempotent. Returns the shards where a slot was dropped.
 */
export async function closeReverse(config: Config, waitMs = 15_000): Promise<string[]> {
  const clients = await Promise.all(config.shards.map((s) => connect(shardEndpoint(config, s.id), { applicationName: 'shardctl rollback' })));
  try {
    await Promise.all(clients.map(async (c) => {
      if ((await slotState(c, REVERSE_STREAM))?.active) await sendControl(c, { kind: 'stop' });
    }));
    const until = Date.now() + waitMs;
    for (;;) {
      const active = await Promise.all(clients.map(async (c) => Boolean((await slotState(c, REVERSE_STREAM))?.active)));
      if (!active.some(Boolean) || Date.now() > until) break;
      await sleep(50);
    }
    const dropped = await Promise.all(clients.map((c) => dropStream(c, REVERSE_STREAM)));
    await withClient(sourceEndpoint(config), async (c) => {
      // rollback takes the record's trigger off before it lifts the monolith's fence: only a crash leaves
      // it for here (and cutover --finish, the monolith fenced): never queue behind a live monolith's writers
      if (await recordingWrites(c)) await stopRecordingWrites(c, config.tables.map((t) => qualifiedName(t)), 5000);
      for (const s of config.shards) await clearShardState(c, reverseKey(s.id));
      await clearShardState(c, REVERSE_FOREIGN);
    });
    return config.shards.filter((_, i) => dropped[i]!.slot).map((s) => s.id);
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  }
}

/** Whether a follower streams from every shard's reverse slot; names the shards without one. */
export async function reverseSlots(config: Config): Promise<{ missing: string[]; idle: string[] }> {
  const states = await Promise.all(config.shards.map((s) => withClient(shardEndpoint(config, s.id), (c) => slotState(c, REVERSE_STREAM))));
  return {
    missing: config.shards.filter((_, i) => !states[i]).map((s) => s.id),
    idle: config.shards.filter((_, i) => states[i] && !states[i]!.active).map((s) => s.id),
  };
}

/** Marks every shard's reverse stream with a barrier: the WAL position each must be applied past. */
export async function markShards(clients: readonly pg.ClientBase[]): Promise<Lsn[]> {
  return Promise.all(clients.map((c) => sendControl(c, { kind: 'barrier' })));
}

/** Polls the monolith until every shard's reverse position is past its mark, or throws after `deadline`. */
export async function waitForMonolith(config: Config, marks: readonly Lsn[], deadline: number, signal?: AbortSignal): Promise<void> {
  await withClient(sourceEndpoint(config), async (c) => {
    for (;;) {
      signal?.throwIfAborted(); // the caller lifts the shard fence
      const at = await Promise.all(config.shards.map(async (s) => (await readPosition(c, reverseKey(s.id))) ?? ZERO_LSN));
      const behind = config.shards.filter((_, i) => at[i]! <= marks[i]!).map((s) => s.id);
      if (!behind.length) return;
      if (Date.now() > deadline) {
        throw blockedError(`the reverse follower did not catch up in time: the monolith is still behind shard(s) ${behind.join(', ')}; the shard fence is lifted`, {
          hint: 'check that shardctl rollback --follow is running and keeping up (shardctl health), then run rollback again, perhaps with a longer --timeout',
        });
      }
      await sleep(50);
    }
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * cutover's hook, after its verify: a shard fence left by an earlier rollback goes (the shards are
 * about to be the source of truth again); with `reverse`, the reverse stream opens and the catalog
 * records the window. Returns each shard's reverse start position.
 */
export async function atCutover(config: Config, catalog: pg.ClientBase, models: readonly TableModel[], reverse: boolean, timeoutMs: number): Promise<Record<string, string> | undefined> {
  const tables = models.map((t) => t.name);
  for (const s of config.shards) await withClient(shardEndpoint(config, s.id), (c) => liftSourceFence(c, tables, 'rollback'));
  if (!reverse) return undefined;
  const starts = await openReverse(config, models, timeoutMs);
  await openOnline(catalog, REVERSE_STREAM, 'following');
  return Object.fromEntries([...starts].map(([shard, at]) => [shard, lsnText(at)]));
}

/** cutover failed after its hook: the window it opened closes again (the monolith stays the truth). */
export async function cutoverFailed(config: Config, catalog: pg.ClientBase, reverse: boolean): Promise<void> {
  if (!reverse) return;
  await closeReverse(config, 0);
  await deleteOnline(catalog, REVERSE_STREAM);
}
