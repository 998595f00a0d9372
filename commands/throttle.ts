import type { Command } from 'commander';
import { usageError } from '../src/basics.js';
import { duration, load, output, withGlobalOptions, type GlobalOptions } from './context.js';

interface ThrottleFlags extends GlobalOptions {
  for?: number;
}

export function register(program: Command): void {
  withGlobalOptions(
    program
      .command('throttle')
      .description('pause every running copy and apply (migrate, migrate --follow) at their next batch, from any terminal; off resumes them')
      .argument('<on|off>', 'on: pause (recorded in the catalog with who set it); off: resume')
      .option('--for <duration>', 'with on: lift it by itself after this long, e.g. 10m, 90s, 1h', duration('--for', 's')),
  ).action(async (state: string, opts: ThrottleFlags) => {
    if (state !== 'on' && state !== 'off') throw usageError(`throttle takes on or off, got "${state}"`);
    if (state === 'off' && opts.for !== undefined) throw usageError('--for goes with throttle on');
    const config = await load(opts);
    const { throttleOff, throttleOn } = await import('../src/index.js');
    const out = output(opts);
    if (state === 'off') {
      const was = await throttleOff(config);
      out.result(was ? 'throttle off: copies and applies resume at their next check' : 'throttle was not on: nothing to lift', { on: false, was });
      return;
    }
    const f = await throttleOn(config, opts.for);
    out.result(`throttle on (set by ${f.setBy}${f.until ? `, until ${f.until.toISOString()}` : ', until shardctl throttle off'}): copies and applies pause at their next batch`, { on: true, ...f });
  });
}
