// Small process helpers. The postmaster is daemonised by pg_ctl (reparented, not our child), and
// PID 1 in a container may never reap it, so "alive" must treat a zombie as dead.
import { spawn } from 'node:child_process';
import { readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import type { RunAs } from './osuser.js';

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Environment for PostgreSQL binaries: no PG* variables (PGPORT would change the default port). */
export function pgEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) env[k] = v;
  env.LC_ALL = 'C';
  env.LANG = 'C';
  return env;
}

/** Run a binary (as `runAs` when we are root) and collect its output; never rejects on exit code. */
export function run(bin: string, args: string[], runAs?: RunAs, timeoutMs = 120_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: pgEnv(),
      cwd: '/',
      ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    // 'close' is safe to wait for: pg_ctl -l redirects the postmaster's stdio to the log file,
    // so the daemon does not keep our pipes open.
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    // /proc/<pid>/stat: "pid (comm) S ..." — state Z means exited but unreaped.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return true; // no procfs: trust kill(0)
  }
}

/**
 * The live postmaster of a data directory, or undefined. The pid file can outlive its process and
 * pids get reused, so on Linux the pid only counts if that process's cwd is the data directory
 * (the postmaster chdirs there).
 */
export function postmasterPid(dataDir: string): number | undefined {
  let pid: number;
  try {
    pid = Number.parseInt(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0] ?? '', 10);
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 0 || !pidAlive(pid)) return undefined;
  try {
    if (path.resolve(readlinkSync(`/proc/${pid}/cwd`)) !== path.resolve(dataDir)) return undefined;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      // Either no procfs or the process just vanished; decide by liveness alone.
      return pidAlive(pid) ? pid : undefined;
    }
  }
  return pid;
}

/** Block the thread (exit handlers cannot await). */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
