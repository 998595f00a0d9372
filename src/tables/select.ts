import { getResolution } from 'h3-js';
import { usageError } from '../errors.js';
import { isCell } from '../cells/h3.js';
import type { Model, TableModel } from './model.js';
import { routeChain } from './scope.js';

/** `--tables`: configured tables by `schema.table` or by their configured name, kept in FK order. */
export function selectTables(model: Model, names?: readonly string[]): readonly TableModel[] {
  if (!names) return model.tables;
  const known = new Map(model.tables.flatMap((t) => [[t.name, t], [t.config.name, t]] as const));
  const missing = names.filter((n) => !known.has(n));
  if (missing.length) throw usageError(`--tables: not a configured table: ${missing.join(', ')}`);
  const set = new Set(names.map((n) => known.get(n)!));
  return model.tables.filter((t) => set.has(t));
}

/**
 * The tables plus every `via` parent up their chains, in FK order. A child's rows are placed and
 * counted through its parents, so `verify --tables child` must check the parents too: a drifted
 * parent would otherwise pass unseen.
 */
export function withParents(model: Model, tables: readonly TableModel[]): readonly TableModel[] {
  const names = new Set(tables.flatMap((t) => routeChain(model.config, t.config).map((c) => `${c.schema}.${c.name}`)));
  return model.tables.filter((t) => names.has(t.name));
}

/** Unit ids end up in SQL (as escaped literals cast to the key type): refuse ones that cannot be units. */
export function checkUnits(model: Model, tables: readonly TableModel[], units: readonly string[]): void {
  const st = model.config.strategy;
  let bad: string[];
  if (st.kind === 'h3') {
    bad = units.filter((u) => !isCell(u) || getResolution(u) !== st.shardResolution);
    if (bad.length) throw usageError(`--units: not an H3 cell of resolution ${st.shardResolution}: ${bad.slice(0, 5).join(', ')}`);
    return;
  }
  const keyTypes = new Set(
    tables.flatMap((t) => {
      const chain = routeChain(model.config, t.config);
      const root = chain[chain.length - 1]!;
      return root.route.kind === 'key' ? [model.ctx.keyType(`${root.schema}.${root.name}`)] : [];
    }),
  );
  if ([...keyTypes].some((k) => /^(smallint|integer|bigint|numeric)/.test(k))) {
    bad = units.filter((u) => !/^-?\d+$/.test(u));
    if (bad.length) throw usageError(`--units: tenant keys here are integers: ${bad.slice(0, 5).join(', ')}`);
  }
  if (units.some((u) => u.includes('\0'))) throw usageError('--units: a unit cannot contain a NUL byte');
}

