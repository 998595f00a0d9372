import { createHash } from 'node:crypto';

/**
 * The routing key of a tenant: md5 of the UTF-8 bytes of its text form, first 8 bytes read
 * big-endian as an unsigned 64-bit integer. A number is hashed as its decimal text, so the
 * tenant `42`, `42n` and `'42'` all route alike.
 *
 * @example tenantKey64(42) === tenantKey64('42')
 */
export function tenantKey64(id: string | number | bigint): bigint {
  const digest = createHash('md5').update(tenantText(id), 'utf8').digest();
  return digest.readBigUInt64BE(0);
}

/** The canonical text of a tenant id (what is hashed, stored in the catalog and shown). */
export function tenantText(id: string | number | bigint): string {
  if (typeof id === 'number') {
    if (!Number.isSafeInteger(id)) {
      throw new RangeError(`tenant id ${id} is not a safe integer; pass it as a string or bigint`);
    }
    return String(id);
  }
  return typeof id === 'bigint' ? id.toString(10) : id;
}
