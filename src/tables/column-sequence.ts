/**
 * SQL (text) naming the sequence a column takes its values from, schema-qualified and quoted as
 * pg_get_serial_sequence gives it, or NULL: the sequence owned by the column (serial, identity),
 * else the one its DEFAULT calls (`DEFAULT nextval('ids')` with a sequence created apart and
 * not OWNED BY the column: pg_get_serial_sequence misses it, and ids from it would collide across
 * shards just the same). The default's dependency on the sequence (pg_depend, from pg_attrdef)
 * finds it whatever the text of the expression; a default naming two sequences takes the first by
 * name. `rel` is an expression of the table's regclass, `col` of the column's name.
 */
export function columnSequenceSql(rel: string, col: string): string {
  return `coalesce(pg_get_serial_sequence((${rel})::regclass::text, (${col})::text),
    (SELECT quote_ident(seq_ns.nspname) || '.' || quote_ident(seq.relname)
       FROM pg_attribute seq_att
       JOIN pg_attrdef seq_def ON seq_def.adrelid = seq_att.attrelid AND seq_def.adnum = seq_att.attnum
       JOIN pg_depend seq_dep ON seq_dep.classid = 'pg_attrdef'::regclass AND seq_dep.objid = seq_def.oid AND seq_dep.refclassid = 'pg_class'::regclass
       JOIN pg_class seq ON seq.oid = seq_dep.refobjid AND seq.relkind = 'S'
       JOIN pg_namespace seq_ns ON seq_ns.oid = seq.relnamespace
      WHERE seq_att.attrelid = (${rel})::regclass AND seq_att.attname = (${col})::text
      ORDER BY 1 LIMIT 1))`;
}
