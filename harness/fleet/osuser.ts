// PostgreSQL refuses to run as root. When we are root, initdb/pg_ctl run as an unprivileged
// `postgres` OS user (created if missing) and every file they touch is chowned to it.
import { spawnSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface RunAs {
  name: string;
  uid: number;
  gid: number;
}

const USER = 'postgres';
let cached: RunAs | undefined | null = null;

function idOf(flag: '-u' | '-g'): number | undefined {
  const r = spawnSync('id', [flag, USER], { encoding: 'utf8' });
  const n = Number.parseInt(r.stdout ?? '', 10);
  return r.status === 0 && Number.isInteger(n) ? n : undefined;
}

/** undefined when we are not root (binaries then run as ourselves). */
export function resolveRunAs(): RunAs | undefined {
  if (cached !== null) return cached;
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return (cached = undefined);
  if (idOf('-u') === undefined) {
    // Debian/RHEL tools first, busybox (Alpine) second. "already exists" failures are harmless
    // (another process may have raced us), so only the final id lookup decides.
    spawnSync('groupadd', ['--system', USER], { stdio: 'ignore' });
    const r = spawnSync('useradd', ['--system', '--no-create-home', '-g', USER, '-s', '/usr/sbin/nologin', USER], { stdio: 'ignore' });
    if (r.error || r.status !== 0) {
      spawnSync('addgroup', ['-S', USER], { stdio: 'ignore' });
      spawnSync('adduser', ['-S', '-D', '-H', '-G', USER, USER], { stdio: 'ignore' });
    }
  }
  const uid = idOf('-u');
  const gid = idOf('-g');
  if (uid === undefined || gid === undefined) {
    throw new Error(`running as root, and could not find or create the unprivileged OS user "${USER}" that PostgreSQL needs`);
  }
  return (cached = { name: USER, uid, gid });
}

/** chown -R (lchown: never follow symlinks out of the tree). */
export async function chownTree(root: string, who: RunAs): Promise<void> {
  await fsp.lchown(root, who.uid, who.gid);
  const st = await fsp.lstat(root);
  if (!st.isDirectory()) return;
  const entries = await fsp.readdir(root, { withFileTypes: true });
  await Promise.all(
    entries.map((e) => {
      const p = path.join(root, e.name);
      return e.isDirectory() ? chownTree(p, who) : fsp.lchown(p, who.uid, who.gid);
    }),
  );
}

/**
 * Fail early, with a clear message, if the server user cannot create files in `dir` (already
 * chowned to it) — i.e. some parent directory is not traversable, e.g. a project under /root.
 */
export function assertUsableBy(dir: string, who: RunAs | undefined): void {
  if (!who) return;
  const r = spawnSync('/bin/sh', ['-c', 'test -d "$1" && test -w "$1" && test -x "$1"', 'sh', dir], {
    uid: who.uid,
    gid: who.gid,
    stdio: 'ignore',
  });
  if (r.status !== 0) {
    throw new Error(
      `the OS user "${who.name}" that runs PostgreSQL cannot write to ${dir} (every parent directory must be traversable by it); choose a directory under ${os.tmpdir()}`,
    );
  }
}
