import pgpass from 'pgpass';
import { connectionUrl, type ConnectionUrl } from '../config/url.js';

/**
 * libpq's password sources for a URL that carries none: PGPASSWORD, then the password file
 * (PGPASSFILE, else ~/.pgpass). Resolved here rather than by pg's own pgpass fallback, which is
 * deprecated and prints a warning. Returns the URL to connect with (never shown to anyone).
 */
export async function withPassword(url: string): Promise<string> {
  let u: ConnectionUrl;
  try {
    u = connectionUrl(url);
  } catch {
    return url;
  }
  if (u.password) return url;
  const user = decodeURIComponent(u.username) || process.env.PGUSER || process.env.USER || '';
  const info = {
    // a Unix socket (?host=/dir) matches `localhost` in the password file, as for libpq
    host: u.hostname || 'localhost',
    port: u.port || u.searchParams.get('port') || process.env.PGPORT || '5432',
    database: decodeURIComponent(u.pathname.replace(/^\//, '')) || user,
    user,
  };
  const password =
    process.env.PGPASSWORD ?? (await new Promise<string | undefined>((resolve) => pgpass(info, (pass) => resolve(pass))));
  if (!password) return url;
  // the user info written in place (a Unix-socket URL has no host for URL to keep)
  return url.replace(/^(postgres(?:ql)?:\/\/)([^@/?#]*@)?/i, `$1${encodeURIComponent(user)}:${encodeURIComponent(password)}@`);
}
