import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { lsn, lsnDiff, lsnText, parseLsn, ZERO_LSN } from '../../src/db/lsn.js';

// The one WAL position type: parsed from and formatted to pg_lsn's text at the edges. No server: the
// texts are as PostgreSQL prints them (upper-case hex halves, no leading zeros).
describe('WAL positions', () => {
  it('read and print pg_lsn text exactly, past 2^53', () => {
    for (const text of ['0/0', '0/16B3748', '16/B374D848', 'FFFFFFFF/FFFFFFFF']) assert.equal(lsnText(lsn(text)), text);
    assert.equal(lsn('16/B374D848'), (0x16n << 32n) + 0xb374d848n);
    assert.equal(lsn('ffffffff/ffffffff'), 2n ** 64n - 1n);
    assert.ok(lsn('FFFFF/FFFFFFFE') < lsn('FFFFF/FFFFFFFF')); // a Number would not tell these apart
    assert.equal(lsnText(ZERO_LSN), '0/0');
  });

  it('refuse what is not a position: null from parseLsn, a throw from lsn', () => {
    for (const bad of [null, undefined, '', '16', '16/', 'G/1', '1/2/3', '123456789/0']) assert.equal(parseLsn(bad), null, String(bad));
    assert.throws(() => lsn('16'), /not an LSN/);
  });

  it('count bytes between two positions, never negative, null when one is unknown', () => {
    assert.equal(lsnDiff(lsn('1/0'), lsn('0/FFFFFF00')), 256);
    assert.equal(lsnDiff(lsn('0/10'), lsn('0/20')), 0);
    assert.equal(lsnDiff(parseLsn(null), lsn('0/20')), null);
  });
});
