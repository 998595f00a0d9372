import type { Config } from '../config/types.js';
import { parentCell } from '../cells/h3.js';
import type { Router } from '../routing/router.js';
import type { Model, TableModel } from '../tables/model.js';
import type { Row } from './decoder.js';

/**
 * Where a streamed row lives, decided with the very functions the copy placed rows with: the key
 * column through the router (pins, then the jump hash), an H3 index column through its parent cell,
 * lat/lng through the resolution-12 → shard-resolution rule (shardCell), a `via` table through the
 * shard that holds its parent row (asked of `parentShard`, which knows the stream's own changes).
 */
export type Placement = { kind: 'shard'; shard: string; unit?: string } | { kind: 'all' } | { kind: 'unknown'; why: string };

export interface RowRouter {
  route(table: TableModel, row: Row): Promise<Placement>;
}

export function rowRouter(
  model: Model,
  router: Router,
  parentShard: (parent: TableModel, column: string, value: string) => Promise<Placement>,
  /** the shard a unit is placed on when the catalog says so (else its route) */
  placed: (unit: string) => string | undefined = () => undefined,
): RowRouter {
  const config: Config = model.config;
  const shardOfUnit = (unit: string, fromRouter: () => string) => placed(unit) ?? fromRouter();
  const value = (table: TableModel, row: Row, column: string): string => {
    const v = row[column];
    if (v === undefined) throw new Error(`internal: ${table.name}.${column} not in the streamed row`);
    if (v === null) throw new RouteError(`table ${table.name}: a streamed row has a NULL ${column}; it belongs to no unit`);
    return v;
  };
  return {
    async route(table, row) {
      const r = table.config.route;
      switch (r.kind) {
        case 'reference':
          return { kind: 'all' };
        case 'key': {
          const unit = value(table, row, r.column);
          return { kind: 'shard', shard: shardOfUnit(unit, () => router.shardFor(unit)), unit };
        }
        case 'cell': {
          if (config.strategy.kind !== 'h3') throw new Error('internal: cell route without h3');
          const cell = BigInt(value(table, row, r.column)).toString(16);
          const unit = parentCell(cell, config.strategy.shardResolution);
          return { kind: 'shard', shard: shardOfUnit(unit, () => router.shardForCell(cell)), unit };
        }
        case 'latlng': {
          const cell = router.cellFor(Number(value(table, row, r.lat)), Number(value(table, row, r.lng)));
          return { kind: 'shard', shard: shardOfUnit(cell, () => router.shardForCell(cell)), unit: cell };
        }
        case 'via':
          return parentShard(model.table(r.parent), r.parentColumn, value(table, row, r.column));
      }
    },
  };
}

/** A row the stream cannot place: the follower stops with this message (exit 3), the slot kept. */
export class RouteError extends Error {}
