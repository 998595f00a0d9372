import { readFileSync } from 'node:fs';
import { connectionUrl } from '../config/url.js';
import { blockedError, type UserError } from '../errors.js';

/**
 * A connection URL as libpq means it, for pg. pg reads `sslmode=require` (and prefer, verify-ca) as
 * verify-full and prints a SECURITY WARNING on every run; `uselibpqcompat=true` gives each mode its
 * libpq meaning (require: encrypted, certificate not checked unless sslrootcert is given), without
 * the warning. A Unix socket is `postgresql://user@/db?host=/var/run/postgresql`, as for libpq.
 *
 * The URL is checked here first for what pg's parser would throw from deep inside the client (a
 * certificate file that cannot be read, a malformed %-escape, verify-ca without a root certificate),
 * so each is one line naming the server, exit 3, never a stack.
 */
export function libpqUrl(url: string, name: string): string {
  const compat = /[?&]sslmode=/i.test(url) && !/[?&]uselibpqcompat=/i.test(url);
  const out = compat ? `${url}${url.includes('?') ? '&' : '?'}uselibpqcompat=true` : url;
  try {
    check(out);
  } catch (err) {
    throw unusable(name, err);
  }
  return out;
}

/** What pg-connection-string decodes and reads, in its order (it is pg's parser; not imported: pg's own dependency). */
function check(url: string): void {
  const u = connectionUrl(url);
  decodeURIComponent(u.username);
  decodeURIComponent(u.password);
  decodeURIComponent(u.hostname);
  decodeURI(u.pathname);
  for (const key of ['sslcert', 'sslkey', 'sslrootcert']) {
    const file = u.searchParams.get(key);
    if (file) readFileSync(file);
  }
  if (u.searchParams.get('sslmode') === 'verify-ca' && !u.searchParams.get('sslrootcert')) {
    throw new Error('sslmode=verify-ca needs the CA in sslrootcert (or use sslmode=verify-full)');
  }
}

function unusable(name: string, err: unknown): UserError {
  const e = err as NodeJS.ErrnoException;
  if (e.syscall === 'open' || e.code === 'ENOENT' || e.code === 'EACCES' || e.code === 'EISDIR') {
    const what = e.code === 'ENOENT' ? 'no such file' : e.code === 'EACCES' ? 'permission denied' : e.code === 'EISDIR' ? 'a directory' : e.code;
    return blockedError(`${name}: cannot connect: the certificate or key file ${e.path} cannot be read (${what})`, {
      hint: 'check sslrootcert, sslcert and sslkey in the connection URL (paths are read on the machine running shardctl)',
    });
  }
  if (err instanceof URIError) {
    return blockedError(`${name}: cannot connect: the connection URL has a malformed %-escape`, { hint: 'write a literal % as %25 (in a password too)' });
  }
  // pg's own words for a mode it cannot honour (verify-ca without sslrootcert), less its shouting
  return blockedError(`${name}: cannot connect: ${String((err as Error).message ?? err).replace(/^SECURITY WARNING: /, '')}`);
}
