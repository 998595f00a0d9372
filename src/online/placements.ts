/**
 * Units created on the monolith while it was followed have rows on their shards but no placement
 * yet: after cutover the catalog must name every unit's shard. Every row of such a unit was written
 * while following, so the changed rows cutover checked name them all (with their shard and root
 * rows) — no scan of the monolith. The catalog statement is catalog/placements.ts's.
 */
export { recordNewUnits } from '../catalog/placements.js';
