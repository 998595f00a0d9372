import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MESSAGE_PREFIX, moveTag, parseControl } from '../../src/stream/control.js';

// The follower's control messages as the decoder hands them over (prefix, content). No server: the
// texts below are what earlier versions wrote on the source, so a window opened by one still works.
describe('the follower control protocol', () => {
  it('reads stop and barrier, and nothing under another prefix', () => {
    assert.deepEqual(parseControl(MESSAGE_PREFIX, 'stop'), { kind: 'stop' });
    assert.deepEqual(parseControl(MESSAGE_PREFIX, 'barrier'), { kind: 'barrier' });
    assert.equal(parseControl('other', 'stop'), undefined);
    assert.equal(parseControl(MESSAGE_PREFIX, 'something new'), undefined);
  });

  it('reads a heartbeat with and without relfilenodes', () => {
    assert.deepEqual(parseControl(MESSAGE_PREFIX, 'heartbeat'), { kind: 'heartbeat' });
    assert.deepEqual(parseControl(MESSAGE_PREFIX, 'heartbeat {"public.t": "16384"}'), { kind: 'heartbeat', relFiles: { 'public.t': '16384' } });
    assert.deepEqual(parseControl(MESSAGE_PREFIX, 'heartbeat {}'), { kind: 'heartbeat', relFiles: {} });
  });

  it("a move's tag reads back as itself, and two tags differ", () => {
    const a = moveTag('shardctl_move_x');
    assert.match(a.tag, /^move shardctl_move_x [0-9a-f-]{36}$/);
    assert.deepEqual(parseControl(MESSAGE_PREFIX, a.tag), a);
    assert.notEqual(moveTag('shardctl_move_x').tag, a.tag);
  });
});
