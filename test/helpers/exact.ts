import assert from 'node:assert/strict';
import { cellToParent } from 'h3-js';
import pg from 'pg';
import type { Config } from '../../src/config/types.js';
import { topologyRouter } from '../../src/routing/router.js';

/**
 * Independent proof that a migration is exact, written without the engine's SQL builders: every
 * row of every sharded table is on the shard its unit routes to, on no other, and the union of the
 * shards equals the source row for row (multiset of row texts).
 */
export async function assertExact(config: Config, opts: { pins?: Record<string, string> } = {}): Promise<void> {
  const router = topologyRouter(config);
  const source = await rowsByTable(config.source, config);
  const seen = new Map<string, Map<string, number>>(); // table -> row text -> count
  for (const shard of config.shards) {
    const rows = await rowsByTable(shard.primary, config);
    for (const [table, list] of rows) {
      const t = config.tables.find((x) => `${x.schema}.${x.name}` === table)!;
      const counts = seen.get(table) ?? seen.set(table, new Map()).get(table)!;
      for (const r of list) {
        if (t.route.kind !== 'reference') {
          const want = routeOf(r.unit!);
          assert.equal(want, shard.id, `${table} row ${r.text.slice(0, 60)} (unit ${r.unit}) is on ${shard.id}, routes to ${want}`);
          counts.set(r.text, (counts.get(r.text) ?? 0) + 1);
        }
      }
      if (t.route.kind === 'reference') {
        const a = list.map((r) => r.text).sort();
        const b = source.get(table)!.map((r) => r.text).sort();
        assert.deepEqual(a, b, `reference table ${table} on ${shard.id} equals the source`);
      }
    }
  }
  for (const [table, list] of source) {
    const t = config.tables.find((x) => `${x.schema}.${x.name}` === table)!;
    if (t.route.kind === 'reference') continue;
    const want = new Map<string, number>();
    for (const r of list) want.set(r.text, (want.get(r.text) ?? 0) + 1);
    assert.deepEqual(seen.get(table) ?? new Map(), want, `${table}: the shards together hold exactly the source rows`);
  }

  function routeOf(unit: string): string {
    if (opts.pins?.[unit]) return opts.pins[unit]!;
    return config.strategy.kind === 'jump' ? router.shardFor(unit) : router.shardForCell(unit);
  }
}

/** Every row of every configured table as text, with its unit computed from first principles. */
async function rowsByTable(url: string, config: Config): Promise<Map<string, { text: string; unit?: string }[]>> {
  const c = new pg.Client({ connectionString: url, options: '-c TimeZone=UTC -c DateStyle=ISO -c extra_float_digits=3' });
  await c.connect();
  try {
    const router = topologyRouter(config);
    const out = new Map<string, { text: string; unit?: string }[]>();
    const unitsOf = new Map<string, Map<string, string>>(); // table -> pk text -> unit
    for (const t of config.tables) {
      const name = `"${t.schema}"."${t.name}"`;
      const r = t.route;
      // the column via children reference (their parentColumn), whose values map to units
      const child = config.tables.find((x) => x.route.kind === 'via' && x.route.parent === `${t.schema}.${t.name}`);
      const pk = child?.route.kind === 'via' ? `t."${child.route.parentColumn}"::text` : 'NULL';
      let sql: string;
      if (r.kind === 'key') sql = `SELECT t::text AS text, t."${r.column}"::text AS unit, ${pk} AS pk FROM ${name} t`;
      else if (r.kind === 'cell') sql = `SELECT t::text AS text, t."${r.column}" AS cell, ${pk} AS pk FROM ${name} t`;
      else if (r.kind === 'latlng') sql = `SELECT t::text AS text, t."${r.lat}" AS lat, t."${r.lng}" AS lng, ${pk} AS pk FROM ${name} t`;
      else if (r.kind === 'via') sql = `SELECT t::text AS text, t."${r.column}"::text AS parent, ${pk} AS pk FROM ${name} t`;
      else sql = `SELECT t::text AS text FROM ${name} t`;
      const rows = (await c.query(sql)).rows;
      const units = new Map<string, string>();
      out.set(
        `${t.schema}.${t.name}`,
        rows.map((row) => {
          let unit: string | undefined;
          if (r.kind === 'key') unit = row.unit;
          else if (r.kind === 'cell') unit = cellParent(BigInt(row.cell).toString(16), config);
          else if (r.kind === 'latlng') unit = router.cellFor(row.lat, row.lng);
          else if (r.kind === 'via') unit = unitsOf.get(r.parent)?.get(row.parent);
          if (unit !== undefined && row.pk !== null) units.set(row.pk, unit);
          if (r.kind !== 'reference') assert.ok(unit !== undefined, `${t.name} row ${row.text.slice(0, 60)} has no unit`);
          return { text: row.text, unit };
        }),
      );
      unitsOf.set(`${t.schema}.${t.name}`, units);
    }
    return out;
  } finally {
    await c.end();
  }
}

function cellParent(cell: string, config: Config): string {
  if (config.strategy.kind !== 'h3') throw new Error('not h3');
  return cellToParent(cell, config.strategy.shardResolution);
}
