import type { Command } from 'commander';
import { routeKeys, routeLocation } from '../src/index.js';
import { usageError } from '../src/index.js';
import { load, output, withGlobalOptions, type GlobalOptions } from './context.js';

interface RouteOptions extends GlobalOptions {
  lat?: string;
  lng?: string;
}

export function register(program: Command): void {
  withGlobalOptions(
    program
      .command('route')
      .description('which shard a tenant (jump) or a location (h3) belongs to')
      .argument('[keys...]', 'tenant keys (jump)')
      .option('--lat <degrees>', 'latitude (h3)')
      .option('--lng <degrees>', 'longitude (h3)'),
  ).action((keys: string[], opts: RouteOptions) => {
    const config = load(opts);
    const out = output(opts);
    if (opts.lat !== undefined || opts.lng !== undefined) {
      if (opts.lat === undefined || opts.lng === undefined || keys.length > 0) {
        throw usageError('route takes either tenant keys or both --lat and --lng');
      }
      const r = routeLocation(config, degrees('--lat', opts.lat), degrees('--lng', opts.lng));
      out.result(`${r.lat},${r.lng}\tcell ${r.cell}\t${r.shard}${r.mapped ? '' : ' (default shard)'}`, r);
      return;
    }
    if (keys.length === 0) throw usageError('route needs tenant keys, or --lat and --lng');
    const routes = routeKeys(config, keys);
    out.result(routes.map((r) => `${r.key}\t${r.shard}${r.pinned ? ' (pinned)' : ''}`).join('\n'), routes);
  });
}

function degrees(flag: string, v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw usageError(`${flag} must be a number of degrees, got "${v}"`);
  return n;
}
