import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { alignFleetSequences } from '../src/sequences/align.js';
import type { Config } from '../src/config/types.js';
import type { TableModel } from '../src/tables/model.js';

/**
 * migrate, add-shard and cutover align the id sequences of every shard; tables without a column
 * fed by a sequence (pgbench's) have nothing to align, and the step opened a session on every shard
 * and the monolith one after another for nothing (0.3 s of every migrate on 4 shards, issue 26).
 * Servers on a closed port prove no session is opened.
 */
describe('sequences: nothing to align opens no session', () => {
  const closed = 'postgres://u@127.0.0.1:1/db';
  const config = { shards: [{ id: 's0', primary: closed }, { id: 's1', primary: closed }] } as unknown as Config;
  const table = (name: string) => ({ name, config: { route: { kind: 'key' } }, info: { columns: [{ name: 'id', sequence: false }] } }) as unknown as TableModel;

  it('no sequence column: every shard reports 0 without a connection', async () => {
    const out = await alignFleetSequences(config, [table('public.a'), table('public.b')], { label: 'source', url: closed });
    assert.deepEqual([...out], [['s0', 0], ['s1', 0]]);
  });

  it('only the shards asked for (add-shard)', async () => {
    assert.deepEqual([...(await alignFleetSequences(config, [table('public.a')], undefined, ['s1']))], [['s1', 0]]);
  });
});
