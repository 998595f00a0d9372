/** Identifiers from the config are always quoted; values are bound, or (COPY takes no parameters) escaped literals. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** `schema.table` → `"schema"."table"` */
export function quoteTable(qualified: string): string {
  const dot = qualified.indexOf('.');
  return dot < 0 ? quoteIdent(qualified) : `${quoteIdent(qualified.slice(0, dot))}.${quoteIdent(qualified.slice(dot + 1))}`;
}

/** A SQL string literal (standard_conforming_strings on, as on every supported server). */
export function quoteLiteral(value: string): string {
  if (value.includes('\0')) throw new RangeError('a NUL byte cannot appear in a PostgreSQL text value');
  return `'${value.replace(/'/g, "''")}'`;
}

/** A text[] literal for COPY queries, where bind parameters are not allowed: `'{"a","b\"c"}'::text[]`. */
export function textArrayLiteral(values: readonly string[]): string {
  const elems = values.map((v) => `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`);
  return `${quoteLiteral(`{${elems.join(',')}}`)}::text[]`;
}

/**
 * A dollar-quoted SQL string for a function body. The tag is chosen so that it does not occur in
 * the body: identifiers from the config are spliced into bodies, and a name containing the tag
 * would otherwise end the string early and inject SQL.
 */
export function dollarQuote(body: string): string {
  let tag = '$f$';
  for (let i = 0; body.includes(tag) || body.endsWith(tag.slice(0, -1)); i++) tag = `$f${i}$`;
  return `${tag}${body}${tag}`;
}
