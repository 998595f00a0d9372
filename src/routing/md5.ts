import crypto from 'node:crypto';

// MD5 (RFC 1321) of one 64-byte block, in 32-bit integer arithmetic. A tenant key is almost always a
// short ASCII id; for those this avoids a native call, a Buffer and a BigInt per key — `plan` of a
// million tenants hashed for two of its ten seconds in crypto.hash. Anything longer than one block
// or not ASCII goes to node:crypto, so only the one-block case has to be right (test/unit/routing.test.ts
// compares both paths byte for byte).

/** T[i] = floor(2^32 * |sin(i + 1)|), the RFC's table (every IEEE double sin gives these exactly). */
const T = Int32Array.from({ length: 64 }, (_, i) => Math.floor(Math.abs(Math.sin(i + 1)) * 2 ** 32) | 0);
const S = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
/** the message word each of the 64 steps reads */
const W = Uint8Array.from({ length: 64 }, (_, i) => (i < 16 ? i : i < 32 ? (5 * i + 1) % 16 : i < 48 ? (3 * i + 5) % 16 : (7 * i) % 16));
const block = new Int32Array(16);

/** The longest text hashed here: 55 bytes, the 0x80 pad and the 8-byte length fill one block. */
const ONE_BLOCK = 55;

/**
 * The first 8 bytes of md5(UTF-8 of `text`) as two big-endian unsigned 32-bit halves, written to
 * out[0] (bytes 0–3) and out[1] (bytes 4–7).
 */
export function md5Head(text: string, out: Uint32Array): void {
  const n = text.length;
  if (n > ONE_BLOCK || !ascii(text)) {
    const d = crypto.createHash('md5').update(text, 'utf8').digest();
    out[0] = d.readUInt32BE(0);
    out[1] = d.readUInt32BE(4);
    return;
  }
  block.fill(0);
  for (let i = 0; i < n; i++) block[i >> 2]! |= text.charCodeAt(i) << ((i & 3) << 3);
  block[n >> 2]! |= 0x80 << ((n & 3) << 3);
  block[14] = n << 3; // bit length, little-endian; below 2^32 for one block
  let a = 0x67452301;
  let b = 0xefcdab89 | 0;
  let c = 0x98badcfe | 0;
  let d = 0x10325476;
  for (let i = 0; i < 64; i++) {
    const r = i >> 4;
    const f = r === 0 ? (b & c) | (~b & d) : r === 1 ? (d & b) | (~d & c) : r === 2 ? b ^ c ^ d : c ^ (b | ~d);
    const s = S[(r << 2) | (i & 3)]!;
    const x = (a + f + T[i]! + block[W[i]!]!) | 0;
    a = d;
    d = c;
    c = b;
    b = (b + ((x << s) | (x >>> (32 - s)))) | 0;
  }
  // the digest is A, B, C, D little-endian: its first 8 bytes read big-endian are A and B byte-swapped
  out[0] = swap((a + 0x67452301) | 0);
  out[1] = swap((b + (0xefcdab89 | 0)) | 0);
}

function ascii(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return false;
  return true;
}

const swap = (x: number) => ((x >>> 24) | ((x >>> 8) & 0xff00) | ((x & 0xff00) << 8) | (x << 24)) >>> 0;
