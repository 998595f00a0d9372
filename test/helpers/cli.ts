import { spawn, spawnSync } from 'node:child_process';
import type { MovePoint } from '../../src/index.js';
import { repoPath } from './paths.js';

const BIN = repoPath('bin/shardctl.js');
/** The test entry that kills the CLI at a move's point (faulty-cli.ts, built next to this file). */
const FAULTY = repoPath('dist/test/helpers/faulty-cli.js');
// a moving unit's fence may wait long on a loaded test machine: tests about that bound set their own
const ENV = { ...process.env, NO_COLOR: '1', CI: 'true', SHARDCTL_MOVE_TIMEOUT: process.env.SHARDCTL_MOVE_TIMEOUT ?? '60s' };

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built launcher, as a user or a CI job would. */
export function runCli(args: string[], env: Record<string, string> = {}): CliResult {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...ENV, ...env }, timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export async function runCliAsync(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return watchCli(args, () => undefined, env);
}

/**
 * Runs the CLI killed (SIGKILL, no cleanup: status null) when a move reaches `point` (a journaled
 * step such as `fenced`, or `fencing`, `slot`, `copy`, `stream`, `source-fencing`); it runs to its
 * end when no move reaches it.
 */
export function runCliKilledAt(point: MovePoint, args: string[], env: Record<string, string> = {}): CliResult {
  const r = spawnSync(process.execPath, [FAULTY, point, ...args], { encoding: 'utf8', env: { ...ENV, ...env }, timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function runCliKilledAtAsync(point: MovePoint, args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return spawnCli([FAULTY, point, ...args], () => undefined, env);
}

/**
 * Runs the launcher with --json progress on stderr and calls `onEvent` for each NDJSON event; the
 * callback gets the child to kill or interrupt it at a chosen moment.
 */
export function watchCli(
  args: string[],
  onEvent: (e: { type: string; [k: string]: unknown }, child: ReturnType<typeof spawn>) => void,
  env: Record<string, string> = {},
): Promise<CliResult> {
  return spawnCli([BIN, ...args], onEvent, env);
}

function spawnCli(
  argv: string[],
  onEvent: (e: { type: string; [k: string]: unknown }, child: ReturnType<typeof spawn>) => void,
  env: Record<string, string>,
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, argv, { env: { ...ENV, ...env } });
    let stdout = '';
    let stderr = '';
    let partial = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d;
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) {
        if (!l.startsWith('{')) continue;
        try {
          onEvent(JSON.parse(l), child);
        } catch {
          /* not an event */
        }
      }
    });
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}
