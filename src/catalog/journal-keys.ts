/**
 * The journal's keys, kept by the one door rather than checked row by row (issue 26).
 *
 * A batch of 20,000 units journals 20,000 placements and 20,000 proofs. Their two foreign keys
 * (placements.run_id → runs, placement_tables.unit → placements) each ran a per-row check: measured
 * with EXPLAIN ANALYZE on the catalog, about 0.4 s of the catalog server's CPU per 20,000 units,
 * more than half of the journal's cost. Both invariants still hold without them, because every write
 * to these tables goes through src/catalog/ (the one door, test/unit/catalog-door.test.ts):
 *  - a proof is written only by recordPlacements (placements.ts), in the same transaction as its
 *    unit's placement (a partial re-copy writes proofs only for units placed before, under the run
 *    lock), so no proof is ever committed without its placement;
 *  - a placement's run_id is the id of the run that holds the run lock, which recorded it in
 *    shardctl.runs first; runs are never deleted.
 * What the foreign key did besides checking, deleting a placement's proofs with it (ON DELETE
 * CASCADE), a statement-level trigger does set-based: the DBA's `DELETE FROM shardctl.placements …`
 * and the engine's forgetPlacements keep forgetting the proofs, and a TRUNCATE of the placements empties the proofs too.
 */
export const JOURNAL_KEYS_MIGRATION = `
ALTER TABLE shardctl.placement_tables DROP CONSTRAINT IF EXISTS placement_tables_unit_fkey;
ALTER TABLE shardctl.placements DROP CONSTRAINT IF EXISTS placements_run_id_fkey;

CREATE FUNCTION shardctl.forget_proofs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- a journal's first write of fresh units deletes no placement: it need not touch the proofs
  IF EXISTS (SELECT 1 FROM forgotten) THEN
    DELETE FROM shardctl.placement_tables t USING forgotten f WHERE t.unit = f.unit;
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER forget_proofs AFTER DELETE ON shardctl.placements
  REFERENCING OLD TABLE AS forgotten FOR EACH STATEMENT EXECUTE FUNCTION shardctl.forget_proofs();

CREATE FUNCTION shardctl.forget_all_proofs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- DELETE, not TRUNCATE: \`TRUNCATE shardctl.placements, shardctl.placement_tables\` is already using the latter
  DELETE FROM shardctl.placement_tables;
  RETURN NULL;
END $$;
CREATE TRIGGER forget_all_proofs AFTER TRUNCATE ON shardctl.placements
  FOR EACH STATEMENT EXECUTE FUNCTION shardctl.forget_all_proofs();
`;
