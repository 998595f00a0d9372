// Cleanup that survives failures: every server this process starts is tracked until stopped, and
// every fleet/template directory until removed. On exit (or a signal nobody else handles) the
// postmasters get SIGQUIT — what `pg_ctl stop -m immediate` sends — all at once, synchronously,
// then SIGKILL if they linger. Fleets left behind by dead processes are swept on the next start.
import { existsSync, promises as fsp, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pidAlive, postmasterPid, sleepSync } from './proc.js';

export const FLEET_PREFIX = 'shardctl-fleet-';
export const OWNER_FILE = 'owner.pid';
export const KEEP_FILE = 'keep';

const servers = new Set<string>(); // data directories of running servers
const dirs = new Set<string>(); // directories to remove at exit
let installed = false;

export function trackServer(dataDir: string): void {
  install();
  servers.add(dataDir);
}
export function untrackServer(dataDir: string): void {
  servers.delete(dataDir);
}
export function untrackDir(dir: string): void {
  dirs.delete(dir);
}

/** Mark a directory as owned by this process and remove it at exit. */
export async function claimDir(dir: string): Promise<void> {
  install();
  await fsp.writeFile(path.join(dir, OWNER_FILE), `${process.pid}\n`);
  dirs.add(dir);
}

/** Leave a fleet directory (and its servers) alive beyond this process: `demo --keep`. */
export function keepDir(dir: string, dataDirs: readonly string[]): void {
  writeFileSync(path.join(dir, KEEP_FILE), `kept by pid ${process.pid} at ${new Date().toISOString()}\n`);
  for (const d of dataDirs) servers.delete(d);
  dirs.delete(dir);
}

/** SIGQUIT every live postmaster, wait up to graceMs, SIGKILL the rest. Synchronous. */
export function killPostmastersSync(dataDirs: Iterable<string>, graceMs = 5000): void {
  const pids: number[] = [];
  for (const d of dataDirs) {
    const pid = postmasterPid(d);
    if (pid === undefined) continue;
    try {
      process.kill(pid, 'SIGQUIT');
      pids.push(pid);
    } catch {
      /* already gone */
    }
  }
  const waitAll = (ms: number) => {
    const deadline = Date.now() + ms;
    while (pids.some(pidAlive) && Date.now() < deadline) sleepSync(20);
  };
  waitAll(graceMs);
  for (const pid of pids.filter(pidAlive)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  waitAll(2000);
}

function removeSync(dir: string): void {
  try {
    rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
  } catch {
    /* best effort at exit */
  }
}

export function cleanupSync(): void {
  killPostmastersSync(servers);
  servers.clear();
  for (const d of dirs) removeSync(d);
  dirs.clear();
}

function onSignal(sig: NodeJS.Signals): void {
  // If the application handles this signal itself (e.g. a graceful Ctrl-C in migrate), let it;
  // the 'exit' hook cleans up when it exits. Otherwise behave like the default: clean up, then
  // die by the same signal so the exit status still says so.
  if (process.listenerCount(sig) > 1) return;
  cleanupSync();
  process.removeListener(sig, onSignal);
  process.kill(process.pid, sig);
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', cleanupSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, onSignal);
}

function ownerAlive(dir: string): boolean {
  try {
    const pid = Number.parseInt(readFileSync(path.join(dir, OWNER_FILE), 'utf8'), 10);
    return Number.isInteger(pid) && pid > 0 && (pid === process.pid || pidAlive(pid));
  } catch {
    // No owner file yet: it may be being created right now. Only an old one is stale.
    try {
      return Date.now() - statSync(dir).mtimeMs < 60_000;
    } catch {
      return true;
    }
  }
}

/**
 * Remove `shardctl-fleet-*` directories under `root` whose owner process is dead and that were
 * not kept: stop their servers (each `<name>/data`), then delete them. Returns the removed dirs.
 */
export function sweepStaleFleets(root: string = os.tmpdir()): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(root).filter((n) => n.startsWith(FLEET_PREFIX));
  } catch {
    return removed;
  }
  for (const n of names) {
    const dir = path.join(root, n);
    try {
      if (!statSync(dir).isDirectory() || existsSync(path.join(dir, KEEP_FILE)) || ownerAlive(dir)) continue;
      const dataDirs = readdirSync(dir, { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => path.join(dir, e.name, 'data'));
      killPostmastersSync(dataDirs);
      removeSync(dir);
      removed.push(dir);
    } catch {
      /* raced with another sweeper or the owner; leave it */
    }
  }
  return removed;
}

/** Stops the servers of a fleet kept by `demo --keep` and removes its directory. Returns false if `dir` is not a kept fleet. */
export function removeKeptFleet(dir: string): boolean {
  if (!existsSync(path.join(dir, KEEP_FILE))) return false;
  const dataDirs = readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => path.join(dir, e.name, 'data'));
  killPostmastersSync(dataDirs);
  removeSync(dir);
  return true;
}
