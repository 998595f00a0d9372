import type pg from 'pg';
import { copyRowChunks } from '../copy/pipe.js';
import { decodeCopyField } from '../copy/text-field.js';
import type { UnitColumns } from '../catalog/placements.js';

/** The batch's units → their index, built once and shared by every table and side of the batch. */
export const unitIndex = (units: readonly string[]): Map<string, number> => new Map(units.map((u, i) => [u, i]));

/**
 * Runs `sql` (groupedByUnit: unit, rows, checksum[, bytes]) as a COPY and fills the columns as its
 * lines stream in, so each line's strings die young. Units outside `index` are ignored (a row with
 * several routes also counts for its other units).
 */
export async function readUnitColumns(c: pg.ClientBase, sql: string, index: ReadonlyMap<string, number>): Promise<UnitColumns> {
  const out: UnitColumns = { rows: new Float64Array(index.size), bytes: new Float64Array(index.size), checksums: new Array<string>(index.size).fill('0') };
  for await (const chunk of copyRowChunks(c, sql)) {
    for (const [unit, rows, checksum, bytes] of chunk) {
      if (unit === undefined || unit === '\\N') continue;
      const i = index.get(decodeCopyField(unit));
      if (i === undefined) continue;
      out.rows[i] = Number(rows);
      out.checksums[i] = checksum === undefined || checksum === '\\N' ? '0' : checksum;
      out.bytes[i] = bytes === undefined || bytes === '\\N' ? 0 : Number(bytes);
    }
  }
  return out;
}
