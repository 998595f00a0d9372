// initdb is the slow part of a new server, so it runs once per process (once per `node --test`
// run: shared-template.ts) into a template data directory; every fleet server starts from a copy of it.
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pgBinaries } from './binaries.js';
import { INCLUDE_LINE } from './conf.js';
import { chownTree, resolveRunAs } from './osuser.js';
import { run } from './proc.js';
import { redactText } from '../../src/index.js';
import { claimDir, FLEET_PREFIX } from './registry.js';
import { randomPassword } from './scram.js';
import { sharedTemplate, testRunnerPid } from './shared-template.js';

export const SUPERUSER = 'postgres';

export interface Template {
  dataDir: string;
  /** Superuser password baked into the template; each server replaces it at start. */
  password: string;
  initdbMs: number;
}

const REPLICATION_HBA = 'host replication all 127.0.0.1/32 scram-sha-256';

async function build(): Promise<Template> {
  const bins = await pgBinaries();
  const who = resolveRunAs();
  // Named like a fleet dir (with owner.pid) so a crashed process's template is swept too.
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), `${FLEET_PREFIX}tpl-`));
  await claimDir(dir);
  await fsp.chmod(dir, 0o755);
  const password = randomPassword();
  const pwfile = path.join(dir, 'pwfile');
  await fsp.writeFile(pwfile, password + '\n', { mode: 0o600 });
  if (who) await chownTree(dir, who);
  const dataDir = path.join(dir, 'data');
  const t0 = Date.now();
  const r = await run(
    bins.initdb,
    ['-D', dataDir, '-U', SUPERUSER, '--auth=scram-sha-256', `--pwfile=${pwfile}`, '-E', 'UTF8', '--locale=C', '-N', '--no-instructions'],
    who,
  );
  const initdbMs = Date.now() - t0;
  await fsp.rm(pwfile, { force: true });
  if (r.code !== 0) {
    throw new Error(`initdb failed (exit ${r.code}): ${redactText(r.stderr || r.stdout, [password]).trim()}`);
  }
  await fsp.appendFile(path.join(dataDir, 'postgresql.conf'), `\n${INCLUDE_LINE}\n`);
  // initdb's scram default already allows local replication; make sure rather than assume.
  const hbaPath = path.join(dataDir, 'pg_hba.conf');
  const hba = await fsp.readFile(hbaPath, 'utf8');
  const has = hba.split('\n').some((l) => l.trim().split(/\s+/).join(' ') === REPLICATION_HBA);
  if (!has) await fsp.appendFile(hbaPath, `\n${REPLICATION_HBA}\n`);
  return { dataDir, password, initdbMs };
}

let building: Promise<Template> | undefined;

export function getTemplate(): Promise<Template> {
  const runner = testRunnerPid();
  building ??= (runner === undefined ? build() : sharedTemplate(runner, build)).catch((e) => {
    building = undefined;
    throw e;
  });
  return building;
}
