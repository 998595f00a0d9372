import type pg from 'pg';
import { readPlacements } from './placements.js';

/** Placements, or none when no shardctl run has created the catalog yet (read-only commands never create it). */
export async function placementsIfAny(c: pg.ClientBase): Promise<Map<string, string>> {
  const r = await c.query(`SELECT to_regclass('shardctl.placements') IS NOT NULL AS ok`);
  return r.rows[0].ok ? readPlacements(c) : new Map();
}
