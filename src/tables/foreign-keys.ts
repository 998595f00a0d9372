import type pg from 'pg';
import { quoteLiteral, quoteTable } from '../db/ident.js';

/**
 * A foreign key of a configured table, as declared: on the table itself or on one of its partitions
 * only (a partitioned table's own keys are inherited by every partition; keys added to a single
 * partition exist nowhere else, and a scan of the parent's constraints alone would miss them).
 */
export interface ForeignKey {
  readonly name: string;
  /** the configured table (`schema.table`) the key's rows belong to */
  readonly table: string;
  /** the partition the key is declared on, when it is not declared on `table` itself */
  readonly partition?: string;
  /** the referenced table; a partition of a configured table is named by that table */
  readonly ref: string;
  /** true when `ref` is a configured table (or a partition of one) */
  readonly refConfigured: boolean;
  readonly cols: readonly string[];
  readonly refCols: readonly string[];
}

// conparentid <> 0 marks the clones PostgreSQL makes of a declared key (one per partition of the
// referencing table, one per partition of a referenced partitioned table): the declared key suffices.
const FOREIGN_KEYS = `
  WITH RECURSIVE rel AS (
    SELECT c.oid, n.nspname || '.' || c.relname AS owner, NULL::text COLLATE "C" AS part
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname || '.' || c.relname = ANY($1::text[]) AND c.relkind IN ('r', 'p')
    UNION ALL
    SELECT i.inhrelid, rel.owner, pn.nspname || '.' || pc.relname
      FROM pg_inherits i JOIN rel ON i.inhparent = rel.oid
      JOIN pg_class pc ON pc.oid = i.inhrelid JOIN pg_namespace pn ON pn.oid = pc.relnamespace)
  SELECT k.conname AS name, r.owner AS "table", r.part AS partition,
         coalesce(p.owner, rn.nspname || '.' || rc.relname) AS ref, p.owner IS NOT NULL AS "refConfigured",
         ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY x(n, o)
               JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = x.n ORDER BY x.o) AS cols,
         ARRAY(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY x(n, o)
               JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = x.n ORDER BY x.o) AS "refCols"
    FROM pg_constraint k
    JOIN rel r ON r.oid = k.conrelid
    JOIN pg_class rc ON rc.oid = k.confrelid JOIN pg_namespace rn ON rn.oid = rc.relnamespace
    LEFT JOIN rel p ON p.oid = k.confrelid
   WHERE k.contype = 'f' AND k.conparentid = 0
   ORDER BY 2, 3 NULLS FIRST, 1`;

/** Every foreign key declared on the given tables (`schema.table`) or on their partitions. */
export async function foreignKeys(client: pg.ClientBase, tables: readonly string[]): Promise<ForeignKey[]> {
  const r = await client.query(FOREIGN_KEYS, [tables]);
  return r.rows.map((x) => ({ ...x, partition: x.partition ?? undefined }));
}

/** `fk_name on public.payment_p2022_01` or `fk_name on public.rental`: how messages name a key. */
export const keyName = (fk: ForeignKey) => `${fk.name} on ${fk.partition ?? fk.table}`;

/** SQL condition on the scope's t0: only the rows of the partition a key is declared on are bound by it. */
export const partitionFilter = (fk: ForeignKey) => (fk.partition ? ` AND t0.tableoid = ${quoteLiteral(quoteTable(fk.partition))}::regclass` : '');
