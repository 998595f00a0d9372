import assert from 'node:assert/strict';
import pg from 'pg';
import { sql } from './fleet.js';

const MOVE_LOCK = 0x4d6f7665; // rebalance/online.ts: one applier per move stream
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A plain test session (not shardctl's: its name does not start with shardctl). */
export async function session(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url, application_name: 'fence-hold-test' });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

/**
 * Holds an online move (its stream `slot`) at its fence on the old shard, with locks only, so a
 * test can act at that moment: the move's applier lock on the new shard holds it before its
 * catch-up; `streaming()` (call it at the move's `streaming` step) takes a key-share lock on the old
 * shard's fence_epoch, which holds the fence, and lets the move on; `fenceWaiting()` returns once
 * the fence waits for that lock; `letIn()` lets the fence in. `end()` releases everything.
 */
export async function fenceHold(fromUrl: string, toUrl: string, slot: string) {
  const gate = await session(toUrl);
  const epoch = await session(fromUrl);
  await gate.query('SELECT pg_advisory_lock($1, hashtext($2))', [MOVE_LOCK, slot]);
  return {
    async streaming(): Promise<void> {
      await epoch.query('BEGIN');
      await epoch.query('SELECT * FROM shardctl.fence_epoch FOR KEY SHARE');
      await gate.query('SELECT pg_advisory_unlock($1, hashtext($2))', [MOVE_LOCK, slot]);
    },
    async fenceWaiting(): Promise<void> {
      let waiting = false;
      for (let i = 0; i < 1200 && !waiting; i++) {
        waiting = (await sql(fromUrl, `SELECT 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE NOT l.granted AND a.application_name LIKE 'shardctl%'`)).length > 0;
        if (!waiting) await sleep(50);
      }
      assert.ok(waiting, 'the move fences the old shard');
    },
    letIn: async (): Promise<void> => {
      await epoch.query('COMMIT');
    },
    async end(): Promise<void> {
      await epoch.query('ROLLBACK').catch(() => undefined);
      await Promise.all([gate, epoch].map((s) => s.end().catch(() => undefined)));
    },
  };
}
