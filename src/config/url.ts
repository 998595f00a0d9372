/** The parts of a connection URL shardctl reads. */
export interface ConnectionUrl {
  readonly protocol: string;
  readonly username: string;
  readonly password: string;
  /** '' for a Unix socket, whose directory is in searchParams `host` */
  readonly hostname: string;
  readonly port: string;
  readonly pathname: string;
  readonly searchParams: URLSearchParams;
}

/**
 * A connection URL parsed as libpq reads it. libpq (and pg) accept an empty host after user info,
 * `postgresql://app:pw@/pos?host=/var/run/postgresql` (a Unix socket), which WHATWG URL refuses: the
 * empty host is parsed through a placeholder and given back as ''. Throws as `new URL` does otherwise.
 */
export function connectionUrl(text: string): ConnectionUrl {
  const socket = /^postgres(?:ql)?:\/\/[^/?#]*@\//i.test(text);
  const u = new URL(socket ? text.replace(/@\//, '@unix-socket/') : text);
  const { protocol, username, password, port, pathname, searchParams } = u;
  return { protocol, username, password, hostname: socket ? '' : u.hostname, port, pathname, searchParams };
}
