import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { countBar } from '../../commands/ui/count-bar.js';
import { unitBars } from '../../commands/run-rebalance.js';
import { scanBars } from '../../commands/verify.js';

/** A stream standing in for a terminal: what the bar draws is kept. */
function terminal(): NodeJS.WriteStream & { text(): string } {
  let out = '';
  const s = new Writable({
    write(chunk, _enc, done) {
      out += chunk.toString();
      done();
    },
  }) as unknown as NodeJS.WriteStream & { text(): string };
  Object.assign(s, { isTTY: true, columns: 120, cursorTo: () => true, clearLine: () => true, moveCursor: () => true, text: () => out });
  return s;
}

describe('progress bars for verify and rebalance', () => {
  it('a count bar draws progress with an ETA on a terminal and keeps logged lines above it', () => {
    const tty = terminal();
    const bar = countBar('table scans', { stream: tty, tty: true })!;
    bar.start(4);
    bar.tick();
    bar.log('s1: could not be read: connection refused');
    bar.tick(3);
    bar.stop();
    const text = tty.text();
    assert.match(text, /4\/4 table scans/);
    assert.match(text, /ETA/);
    assert.match(text, /s1: could not be read: connection refused\n/);
  });

  it('no bar off a terminal or under CI: the caller prints plain lines', () => {
    const pipe = Object.assign(terminal(), { isTTY: false });
    assert.equal(countBar('units moved', { stream: pipe }), undefined);
    const saved = process.env.CI;
    process.env.CI = 'true';
    try {
      assert.equal(countBar('units moved', { stream: terminal() }), undefined);
    } finally {
      if (saved === undefined) delete process.env.CI;
      else process.env.CI = saved;
    }
  });

  it('rebalance --apply and verify on a terminal: a bar over units moved, one over table scans', () => {
    const tty = terminal();
    const r = unitBars(tty);
    r.event({ type: 'plan', moves: 2, resumed: 1 });
    r.event({ type: 'step', unit: '3', from: 's2', to: 's4', step: 'fenced' });
    r.event({ type: 'moved', unit: '3', from: 's2', to: 's4', rows: 1200, online: true, outageSeconds: 0.4 });
    r.event({ type: 'failed', unit: '4', from: 's2', to: 's4', reason: 'checksum differs' });
    r.stop();
    assert.match(tty.text(), /1 interrupted move\(s\) found in the journal/);
    assert.match(tty.text(), /moved 3: s2 → s4 \(1,200 rows, online; writes refused [^)]+\)\n/, 'the write outage per unit');
    assert.match(tty.text(), /FAILED 4: s2 → s4: checksum differs\n/);
    assert.match(tty.text(), /2\/2 units moved/);
    assert.doesNotMatch(tty.text(), /fenced/, 'the steps stay out of the bar view');

    const v = terminal();
    const scans = scanBars(v);
    scans.event({ type: 'start', servers: ['source', 's0'], tables: 3, placementsFrom: 'catalog' });
    for (let i = 0; i < 6; i++) scans.event({ type: 'table', server: i < 3 ? 'source' : 's0', table: `t${i % 3}`, rows: 10, units: 2, seconds: 0.1 });
    scans.stop();
    assert.match(v.text(), /verifying 3 tables on source, s0/);
    assert.match(v.text(), /6\/6 table scans/);
  });
});
