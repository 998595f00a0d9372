import { shardCell, type CellOptions } from './h3.js';

/**
 * Shard cells of coordinates as COPY prints them, remembered. A cell is a function of the point,
 * so a point seen again (a venue's check-ins, a geocoded address, a city's rows) costs a Map lookup
 * instead of an H3 computation (about 3.5 µs). Keyed by the exact text of both coordinates: equal
 * texts are equal doubles, so the cell is the very one shardCell computes, never an approximation
 * (two texts of one double, "1" and "1.0", are merely two entries). Emptied when full: memory stays
 * flat whatever the table, and a table without repeats pays one lookup per row.
 */
export class CellMemo {
  readonly #cells = new Map<string, string>();

  constructor(
    private readonly opts: CellOptions,
    private readonly max = 65_536,
  ) {}

  /**
   * The cell of `point`, two COPY text fields and the tab between them ("lat\tlng"), as
   * shardCell(Number(lat), Number(lng)) gives it: a row's point is looked up as the one slice of its
   * line it already is. Throws as shardCell does (NaN, out of range), and a NULL (`\N`) throws
   * `onNull()`'s error; nothing is remembered then, so every such point is looked at.
   */
  cellOfPoint(point: string, onNull: () => Error): string {
    const known = this.#cells.get(point);
    if (known !== undefined) return known;
    const tab = point.indexOf('\t');
    const lat = point.slice(0, tab);
    const lng = point.slice(tab + 1);
    if (lat === '\\N' || lng === '\\N') throw onNull();
    return this.#remember(point, lat, lng);
  }

  #remember(key: string, lat: string, lng: string): string {
    const cell = shardCell(Number(lat), Number(lng), this.opts);
    if (this.#cells.size >= this.max) this.#cells.clear();
    this.#cells.set(key, cell);
    return cell;
  }
}
