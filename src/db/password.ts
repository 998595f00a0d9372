import pgpass from 'pgpass';

/**
 * libpq's password sources for a URL that carries none: PGPASSWORD, then the password file
 * (PGPASSFILE, else ~/.pgpass). Resolved here rather than by pg's own pgpass fallback, which is
 * deprecated and prints a warning. Returns the URL to connect with (never shown to anyone).
 */
export async function withPassword(url: string): Promise<string> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return url;
  }
  if (u.password) return url;
  const user = decodeURIComponent(u.username) || process.env.PGUSER || process.env.USER || '';
  const info = {
    host: u.hostname || 'localhost',
    port: u.port || '5432',
    database: decodeURIComponent(u.pathname.replace(/^\//, '')) || user,
    user,
  };
  const password =
    process.env.PGPASSWORD ?? (await new Promise<string | undefined>((resolve) => pgpass(info, (pass) => resolve(pass))));
  if (!password) return url;
  if (!u.username) u.username = encodeURIComponent(user);
  u.password = encodeURIComponent(password);
  return u.toString();
}
