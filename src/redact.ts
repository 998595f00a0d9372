/**
 * Passwords never appear in output, logs, JSON, reports or catalog rows. Everything that prints a
 * connection string or an error that may embed one goes through these functions.
 */

/** `postgres://user:secret@host:5432/db?x=1` → `postgres://user:***@host:5432/db` (query dropped: it may carry `password=`). */
export function redactUrl(url: string): string {
  // The user info ends at the LAST '@': a password may hold an unencoded '@' or '/', which a URL
  // parser would take for the start of the host or the path, printing the password's tail.
  const m = /^(postgres(?:ql)?:)\/\/([^:/@]*)(?::.*)?@([^@]*)$/is.exec(url);
  try {
    const u = new URL(m ? `${m[1]}//${m[3]}` : url);
    if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') return redactText(url);
    const user = m ? safeDecode(m[2]!) : decodeURIComponent(u.username);
    const auth = user ? `${user}:***@` : '';
    const port = u.port ? `:${u.port}` : '';
    // a Unix socket has no host in the URL, its directory in ?host= (shown: it names the server)
    const socket = !u.hostname && u.searchParams.get('host') ? `?host=${u.searchParams.get('host')}` : '';
    return `${u.protocol}//${auth}${u.hostname}${port}${u.pathname}${socket}`;
  } catch {
    return redactText(url);
  }
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

// The password runs to the LAST '@' of the URL: an unencoded '@' inside a password is common, and
// stopping at the first one would print the rest of the password as if it were the host.
const URL_PASSWORD = /(postgres(?:ql)?:\/\/[^:/@\s]*:)(\S*)@/gi;
const KV_PASSWORD = /(password\s*=\s*)('[^']*'|"[^"]*"|\S+)/gi;

/** Scrubs passwords out of free text (error messages from pg or the OS can echo a DSN). */
export function redactText(text: string, secrets: readonly string[] = []): string {
  let out = text.replace(URL_PASSWORD, '$1***@').replace(KV_PASSWORD, '$1***');
  for (const s of secrets) if (s.length >= 3) out = out.split(s).join('***');
  return out;
}

/** The password of a connection string, if any, for scrubbing it out of messages. */
export function passwordOf(url: string): string | undefined {
  try {
    const p = new URL(url).password;
    return p ? decodeURIComponent(p) : undefined;
  } catch {
    return undefined;
  }
}
