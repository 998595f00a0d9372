import type pg from 'pg';
import { parentCell, shardCell } from '../cells/h3.js';
import { h3Strategy, type Model, type TableModel } from '../tables/model.js';
import { inKeyChunks, readRecordedRows, rootRoute } from '../row-proof/recorded.js';

/**
 * An online move's proof, without reading the whole unit again. The copy was proven equal at the
 * slot's snapshot (its checksums, before it committed). Every later change of the unit's rows
 * reaches the new shard only through the move's applier, which records each row's key in the
 * transaction that writes it (follow_dirty, under the move's slot; the new shard is fenced, so
 * nothing else writes the unit there). So the unit is equal on both shards exactly when every
 * recorded row is: present with the same content on both, or on neither.
 *
 * While writes go on (`prune`), the new shard is read at a commit of the stream (the applier is
 * held) and the old shard at a later moment: a recorded row equal on both is dropped from the
 * record, since any change to it after that commit is streamed after it and recorded again. A row
 * that differs stays recorded (the old shard may simply be ahead). Inside the fence, with both
 * shards quiet, every row still recorded must be equal, or the move refuses. So the fence checks
 * only the rows changed since the last proof, whatever the unit's size.
 */
export interface ChangedCheck {
  /** recorded rows compared */
  rows: number;
  /** rows found equal (and, with prune, dropped from the record) */
  equal: number;
  /** the first differing rows, as `table T key (…): …` */
  problems: string[];
}

export async function checkChangedRows(
  model: Model,
  unit: string,
  slot: string,
  from: pg.ClientBase,
  to: pg.ClientBase,
  opts: { prune?: boolean } = {},
): Promise<ChangedCheck> {
  const out: ChangedCheck = { rows: 0, equal: 0, problems: [] };
  const r = await to.query<{ tbl: string; key: string }>('SELECT tbl, key FROM shardctl.follow_dirty WHERE slot = $1 ORDER BY tbl, key', [slot]);
  const byTable = new Map<string, string[]>();
  for (const x of r.rows) (byTable.get(x.tbl) ?? byTable.set(x.tbl, []).get(x.tbl)!).push(x.key);
  for (const [name, keys] of byTable) {
    const t = model.sharded.find((x) => x.name === name);
    if (!t) throw new Error(`internal: the move recorded a row of table ${name}, which is not sharded`);
    await inKeyChunks(keys, async (chunk) => {
      const parsed = chunk.map((k) => JSON.parse(k) as string[]);
      const [a, b] = await Promise.all([unitRows(model, t, unit, from, parsed), unitRows(model, t, unit, to, parsed)]);
      const same: string[] = [];
      for (const [j, key] of chunk.entries()) {
        out.rows++;
        const x = a.get(j);
        const y = b.get(j);
        if (x === y) {
          out.equal++;
          same.push(key);
        } else if (!opts.prune && out.problems.length < 20) {
          out.problems.push(`table ${t.name} key (${parsed[j]!.join(', ')}): ${x === undefined ? 'not on the old shard, on the new one' : y === undefined ? 'on the old shard, missing on the new one' : 'differs between the shards'}`);
        }
      }
      if (opts.prune && same.length) {
        await to.query('DELETE FROM shardctl.follow_dirty WHERE slot = $1 AND tbl = $2 AND key = ANY($3::text[])', [slot, name, same]);
      }
    });
  }
  return out;
}

/**
 * The rows of `unit` a shard holds under `keys` (by the key's position in `keys`): each one's hash
 * (row-proof/recorded.ts). A row under such a key that belongs to another unit counts as absent.
 * The unit is decided as the copy scopes rows (the root row of a via chain, joined on the shard).
 */
async function unitRows(model: Model, t: TableModel, unit: string, c: pg.ClientBase, keys: readonly string[][]): Promise<Map<number, string>> {
  const { root, columns } = rootRoute(model, t);
  if (!columns.length) throw new Error(`internal: table ${t.name} has no unit route`);
  const kind = root.config.route.kind;
  const out = new Map<number, string>();
  for (const [i, x] of await readRecordedRows(model, t, c, keys, true)) if (unitOfRoot(model, kind, x.root) === unit) out.set(i, x.hash);
  return out;
}

/** The unit of a root row from its route columns' text (as the applier decides it: unit-apply.ts). */
function unitOfRoot(model: Model, kind: string, v: (string | null)[]): string | undefined {
  if (v.some((x) => x === null)) return undefined;
  if (kind === 'key') return v[0]!;
  const st = h3Strategy(model.config);
  if (kind === 'cell') return parentCell(BigInt(v[0]!).toString(16), st.shardResolution);
  return shardCell(Number(v[0]), Number(v[1]), { indexResolution: st.indexResolution, shardResolution: st.shardResolution });
}

/** The reason a move refuses when recorded rows differ. */
export const changedRowsDiffer = (m: { unit: string; from: string; to: string }, c: ChangedCheck): string =>
  `unit ${m.unit} differs between shard ${m.from} and shard ${m.to} in ${c.rows - c.equal} of the ${c.rows} rows changed since its copy was last proven: ${c.problems.slice(0, 3).join('; ')}`;
