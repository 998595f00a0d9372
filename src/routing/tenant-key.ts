import { md5Head } from './md5.js';

const head = new Uint32Array(2);

/**
 * The routing key of a tenant: md5 of the UTF-8 bytes of its text form, first 8 bytes read
 * big-endian as an unsigned 64-bit integer. A number is hashed as its decimal text, so the
 * tenant `42`, `42n` and `'42'` all route alike.
 *
 * @example tenantKey64(42) === tenantKey64('42')
 */
export function tenantKey64(id: string | number | bigint): bigint {
  tenantKeyHalves(tenantText(id), head);
  return (BigInt(head[0]!) << 32n) | BigInt(head[1]!);
}

/**
 * The same key as two unsigned 32-bit halves (out[0] high, out[1] low) of the tenant's canonical
 * text: what the router feeds `jumpHash32`, with no BigInt per tenant.
 */
export function tenantKeyHalves(text: string, out: Uint32Array): void {
  md5Head(text, out);
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
