import type { Command } from 'commander';
import { usageError } from '../src/basics.js';
import type { RouteSource } from '../src/route-door.js';
import { load, output, withGlobalOptions, type GlobalOptions } from './context.js';

interface RouteOptions extends GlobalOptions {
  lat?: string;
  lng?: string;
}

export function register(program: Command): void {
  withGlobalOptions(
    program
      .command('route')
      .description('which shard a tenant (jump) or a location (h3) routes to now: the catalog\'s live topology (where its rows are), else the config file\'s')
      .argument('[keys...]', 'tenant keys (jump)')
      .option('--lat <degrees>', 'latitude (h3)')
      .option('--lng <degrees>', 'longitude (h3)'),
  ).action(async (keys: string[], opts: RouteOptions) => {
    const config = await load(opts);
    const { routeKeys, routeLocation, routeSource } = await import('../src/route-door.js');
    const out = output(opts);
    const location = opts.lat !== undefined || opts.lng !== undefined;
    if (location && (opts.lat === undefined || opts.lng === undefined || keys.length > 0)) {
      throw usageError('route takes either tenant keys or both --lat and --lng');
    }
    if (!location && keys.length === 0) throw usageError('route needs tenant keys, or --lat and --lng');
    const source = await routeSource(config);
    const topology = source.kind === 'catalog' ? source.topology : undefined;
    if (source.kind === 'catalog') out.info(describeSource(source, config.file));
    else out.warn(describeSource(source, config.file));
    const moving = (to: string | undefined) => (to ? ` (moving to ${to}: routes here until its move flips)` : '');
    if (location) {
      const r = routeLocation(config, degrees('--lat', opts.lat!), degrees('--lng', opts.lng!), topology);
      out.result(`${r.lat},${r.lng}\tcell ${r.cell}\t${r.shard}${r.mapped ? '' : ' (default shard)'}${moving(r.movingTo)}`, r);
      return;
    }
    const routes = routeKeys(config, keys, topology);
    out.result(routes.map((r) => `${r.key}\t${r.shard}${r.pinned ? ' (pinned)' : ''}${moving(r.movingTo)}`).join('\n'), routes);
  });
}

/** Which topology answered: the catalog's version and its held routes, or the config file and why. */
function describeSource(s: RouteSource, file: string): string {
  if (s.kind === 'config') return `routed with ${file}: the catalog's live topology could not be read (${s.why}); a config file does not know which moves have flipped`;
  const held = s.topology.held.size;
  return `routed with the catalog's topology version ${s.topology.version}${held ? `; ${held} unit(s) route to the shard holding their rows until their move flips` : ''}`;
}

function degrees(flag: string, v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw usageError(`${flag} must be a number of degrees, got "${v}"`);
  return n;
}
