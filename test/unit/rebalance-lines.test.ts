import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { rebalanceReporter } from '../../commands/run-rebalance.js';
import type { RebalanceEvent } from '../../src/index.js';

/** What the reporter writes to stderr while `fn` runs and one turn of the event loop after it (its held lines). */
async function stderrOf(fn: () => void): Promise<string[]> {
  let out = '';
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array) => ((out += chunk.toString()), true)) as typeof process.stderr.write;
  try {
    fn();
    await new Promise((r) => setImmediate(r));
  } finally {
    process.stderr.write = write;
  }
  return out.split('\n').filter(Boolean);
}

describe('rebalance --apply in plain lines (CI, pipes)', () => {
  it('a group of online moves prints one line per group and step, not one per unit', async () => {
    const saved = process.env.CI;
    process.env.CI = 'true'; // plain lines, as under CI
    try {
      const units = Array.from({ length: 40 }, (_, i) => `${100 + i}`);
      const reporter = rebalanceReporter({ apply: true } as Parameters<typeof rebalanceReporter>[0]);
      const step = (s: string, from: string, to: string, list: string[]) => {
        // the engine reports a group's step once per unit, in one go (rebalance/move.ts)
        for (const unit of list) reporter.event({ type: 'step', unit, from, to, step: s } as RebalanceEvent);
      };
      const printed = await stderrOf(() => {
        step('started', 's0', 's1', units);
        step('started', 's1', 's0', ['7']);
      });
      const later = await stderrOf(() => {
        step('streaming', 's0', 's1', units);
        reporter.event({ type: 'moved', unit: '7', from: 's1', to: 's0', rows: 12, online: true, group: 1 });
      });
      reporter.stop();
      assert.deepEqual(printed, ['  100, 101, 102 and 37 more: s0 → s1 started', '  7: s1 → s0 started']);
      assert.deepEqual(later, ['  100, 101, 102 and 37 more: s0 → s1 streaming', 'moved 7: s1 → s0 (12 rows, online)']);
    } finally {
      if (saved === undefined) delete process.env.CI;
      else process.env.CI = saved;
    }
  });
});
