// Under `node --test` every test file is a process of its own, and each used to run initdb for its
// own template: seconds of the machine's two cores per file, the same cluster every time. The files
// of one run share one template instead: the first to need it builds it and renames it into place
// (atomically, so a template found there is complete), the others copy from it. Its directory is
// fleet-named and owned by the runner (owner.pid holds the runner's pid), so no test file removes
// it when it exits, and the first fleet start after the run sweeps it like any fleet whose owner
// is gone. Anything else (the CLI, the bench, a test file run alone) keeps a template of its own.
import { readFileSync } from 'node:fs';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FLEET_PREFIX, OWNER_FILE, untrackDir } from './registry.js';

/** template.ts's Template (imported from there it would make a cycle: template.ts calls this file) */
type Template = { dataDir: string; password: string; initdbMs: number };

const PASSWORD_FILE = 'superuser-password';

/** The pid of the `node --test` runner this process is a test file of, if it is one. */
export function testRunnerPid(): number | undefined {
  // set by the runner for its test files, and inherited by whatever they spawn (the CLI):
  // only a process whose parent is the runner itself shares
  if (!process.env.NODE_TEST_CONTEXT) return undefined;
  try {
    const parent = readFileSync(`/proc/${process.ppid}/cmdline`, 'utf8').split('\0');
    return parent.includes('--test') ? process.ppid : undefined;
  } catch {
    return undefined; // no /proc: not shared, as before
  }
}

async function find(dir: string): Promise<Template | undefined> {
  try {
    const password = await fsp.readFile(path.join(dir, PASSWORD_FILE), 'utf8');
    return { dataDir: path.join(dir, 'data'), password, initdbMs: 0 };
  } catch {
    return undefined;
  }
}

/** The run's template: found, or built by `build` (into a directory this process claimed) and published. */
export async function sharedTemplate(runner: number, build: () => Promise<Template>): Promise<Template> {
  const shared = path.join(os.tmpdir(), `${FLEET_PREFIX}tpl-run-${runner}`);
  const found = await find(shared);
  if (found) return found;
  const own = await build();
  const dir = path.dirname(own.dataDir);
  await fsp.writeFile(path.join(dir, PASSWORD_FILE), own.password, { mode: 0o600 });
  await fsp.writeFile(path.join(dir, OWNER_FILE), `${runner}\n`);
  try {
    await fsp.rename(dir, shared);
  } catch {
    // another test file published first: use its template; ours is removed at exit, as before
    return (await find(shared)) ?? own;
  }
  untrackDir(dir);
  return { ...own, dataDir: path.join(shared, 'data') };
}
