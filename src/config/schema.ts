import { z } from 'zod';
import { parseSize } from './units.js';
import { connectionUrl, type ConnectionUrl } from './url.js';
import { isCell } from '../cells/h3.js';

/**
 * The shape of shardctl.yaml as zod schemas. Objects are strict (unknown keys are errors). Checks that
 * span several keys (ids that must exist, table order) live in `check.ts`, so every problem is
 * reported in one pass.
 */

const dsn = z.string().superRefine((s, ctx) => {
  let u: ConnectionUrl;
  try {
    u = connectionUrl(s);
  } catch {
    ctx.addIssue({ code: 'custom', message: 'must be a postgres:// connection URL' });
    return;
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    ctx.addIssue({ code: 'custom', message: `must be a postgres:// connection URL, not ${u.protocol}//` });
  } else if (!u.hostname && !u.searchParams.get('host')) {
    // libpq: a Unix socket directory is given as ?host=/var/run/postgresql
    ctx.addIssue({ code: 'custom', message: 'connection URL has no host (for a Unix socket: postgresql://user@/db?host=/var/run/postgresql)' });
  } else if (!decodes(u)) {
    ctx.addIssue({ code: 'custom', message: 'connection URL has a malformed %-escape (write a literal % as %25, in a password too)' });
  }
});

/** pg decodes the user, password, host and database of a URL: a stray % would stop it at connect time. */
function decodes(u: ConnectionUrl): boolean {
  try {
    for (const part of [u.username, u.password, u.hostname]) decodeURIComponent(part);
    decodeURI(u.pathname);
    return true;
  } catch {
    return false;
  }
}

const identifier = z
  .string()
  .min(1, 'must not be empty')
  .max(63, 'is longer than 63 characters (a PostgreSQL identifier)');

const shardId = z
  .string()
  .regex(/^[A-Za-z][A-Za-z0-9_-]{0,62}$/, 'must start with a letter and use only letters, digits, _ and -');

/** A size as bytes (number) or text with a binary unit: `500MB`, `2 GB`. */
export const byteSize = z.union([z.number().int().nonnegative(), z.string()]).transform((v, ctx) => {
  if (typeof v === 'number') return v;
  const bytes = /\d\s*$/.test(v) ? undefined : parseSize(v); // text needs its unit; a bare count of bytes is a number
  if (bytes === undefined) {
    ctx.addIssue({ code: 'custom', message: 'must be a size such as 500MB or 2GB' });
    return z.NEVER;
  }
  return bytes;
});

const h3Cell = z.string().refine(isCell, 'is not a valid H3 cell index (hex string)');
const resolution = z.number().int().min(0).max(15);

const shard = z.strictObject({
  id: shardId,
  primary: dsn,
  replicas: z.array(dsn).default([]),
  capacity: byteSize.optional(),
});

const jump = z.strictObject({
  kind: z.literal('jump'),
  key: identifier,
  pins: z.record(z.string().min(1), shardId).default({}),
});

const mappingEntry = z.strictObject({
  cell: h3Cell,
  shard: shardId,
  region: z.string().optional(),
  capacity_status: z.enum(['active', 'full', 'read-only']).optional(),
});

const h3 = z.strictObject({
  kind: z.literal('h3'),
  indexResolution: resolution.default(12),
  shardResolution: resolution.default(3),
  defaultShard: shardId,
  mapping: z.array(mappingEntry).default([]),
});

const strategy = z.discriminatedUnion('kind', [jump, h3], {
  error: (issue) =>
    issue.code === 'invalid_union' ? 'kind must be "jump" or "h3"' : undefined,
});

const VIA = /^\s*([A-Za-z_][A-Za-z0-9_$]*)\s*->\s*(?:([A-Za-z_][A-Za-z0-9_$]*)\.)?([A-Za-z_][A-Za-z0-9_$]*)\.([A-Za-z_][A-Za-z0-9_$]*)\s*$/;
export function parseVia(text: string): { column: string; parentSchema?: string; parent: string; parentColumn: string } | undefined {
  const m = VIA.exec(text);
  return m ? { column: m[1]!, parentSchema: m[2], parent: m[3]!, parentColumn: m[4]! } : undefined;
}

/** One way to a unit, in a table that has several (`routes`): a key column, lat/lng or an H3 index column. */
const routeEntry = z.strictObject({
  key: identifier.optional(),
  lat: identifier.optional(),
  lng: identifier.optional(),
  cell: identifier.optional(),
  cellResolution: resolution.optional(),
});

const table = z.strictObject({
  name: identifier,
  schema: identifier.default('public'),
  key: identifier.optional(),
  via: z.string().refine((s) => parseVia(s) !== undefined, 'must look like "column -> parent_table.column"').optional(),
  reference: z.boolean().default(false),
  lat: identifier.optional(),
  lng: identifier.optional(),
  cell: identifier.optional(),
  cellResolution: resolution.optional(),
  /** several routes (a row between two units, e.g. a bump between two users): the row lives on every shard one of them leads to */
  routes: z.array(routeEntry).optional(),
  /** foreign keys of this table (or of its partitions) whose parent may live in another unit, accepted as such */
  crossingKeys: z.array(identifier).default([]),
});

/** A warning level above its critical one would never warn before it is critical. */
const ordered = (l: { warning: number; critical: number }) => l.warning <= l.critical;
const orderedMessage = { message: 'warning must not be above critical (when only one is set, the other is its default)', path: ['warning'] };
const levels = (warning: number, critical: number, value = z.number().nonnegative()) =>
  z.strictObject({ warning: value.default(warning), critical: value.default(critical) })
    .refine(ordered, orderedMessage)
    .default({ warning, critical });
const sizeLevels = (warning: number, critical: number) =>
  z.strictObject({ warning: byteSize.default(warning), critical: byteSize.default(critical) }).refine(ordered, orderedMessage).default({ warning, critical });
const ratio = z.number().min(0).max(1, 'must be a ratio from 0 to 1, such as 0.8');

const health = z
  .strictObject({
    timeoutMs: z.number().int().positive().default(2000),
    latencyMs: levels(250, 1000),
    lagSeconds: levels(10, 300), // the location design's alert: replication lag > 10 s
    lagBytes: sizeLevels(64 * 1024 ** 2, 1024 ** 3),
    slotRetainedBytes: sizeLevels(1024 ** 3, 8 * 1024 ** 3),
    connections: levels(0.8, 0.95, ratio),
    capacity: levels(0.8, 0.9, ratio),
    // a prepared (two-phase) transaction holds its locks and blocks vacuum until it is finished
    preparedSeconds: levels(60, 300),
  })
  .prefault({});

export const configSchema = z.strictObject({
  source: dsn,
  catalog: dsn.optional(),
  strategy,
  shards: z.array(shard).min(1, 'needs at least one shard'),
  tables: z.array(table).min(1, 'needs at least one table'),
  health,
});

export type RawConfig = z.output<typeof configSchema>;
