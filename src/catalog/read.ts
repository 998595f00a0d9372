import type pg from 'pg';
import { catalogHasPlacements, readPlacements } from './placements.js';

/** Placements, or none when no shardctl run has created the catalog yet (read-only commands never create it). */
export async function placementsIfAny(c: pg.ClientBase): Promise<Map<string, string>> {
  return (await catalogHasPlacements(c)) ? readPlacements(c) : new Map();
}
