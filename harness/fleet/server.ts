// One real PostgreSQL server, daemonised by pg_ctl (so `demo --keep` can leave it running) and
// laid out as <dir>/<name>/{data/, postgres.log, .s.PGSQL.<port>}.
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { pgBinaries } from './binaries.js';
import { copyDataDir } from './copy.js';
import { baseSettings, mergeSettings, writeConf } from './conf.js';
import { assertUsableBy, chownTree, resolveRunAs } from './osuser.js';
import { freePort } from './ports.js';
import { pidAlive, postmasterPid, run, sleep } from './proc.js';
import { redactText, redactUrl } from '../../src/index.js';
import { trackServer, untrackServer } from './registry.js';
import { randomPassword, scramVerifier } from './scram.js';
import { getTemplate, SUPERUSER } from './template.js';
import type { ServerHandle, StartServerOptions } from './types.js';

const HOST = '127.0.0.1';
const PORT_TAKEN = /could not bind|address already in use|could not create any TCP\/IP sockets/i;

export interface PgServerInit {
  name: string;
  serverDir: string;
  password: string;
  database: string;
  /** Every GUC except port and unix_socket_directories, which are chosen at launch. */
  settings: Record<string, string>;
  onLog?: (line: string) => void;
}

export class PgServer implements ServerHandle {
  readonly host = HOST;
  readonly user = SUPERUSER;
  readonly name: string;
  readonly password: string;
  readonly database: string;
  readonly serverDir: string;
  readonly dataDir: string;
  readonly logFile: string;
  readonly settings: Record<string, string>;
  #port = 0;
  readonly #onLog: (line: string) => void;

  constructor(init: PgServerInit) {
    this.name = init.name;
    this.password = init.password;
    this.database = init.database;
    this.serverDir = init.serverDir;
    this.dataDir = path.join(init.serverDir, 'data');
    this.logFile = path.join(init.serverDir, 'postgres.log');
    this.settings = init.settings;
    this.#onLog = init.onLog ?? (() => {});
  }

  get port(): number {
    return this.#port;
  }

  url(database: string = this.database): string {
    const u = encodeURIComponent;
    return `postgres://${u(this.user)}:${u(this.password)}@${HOST}:${this.#port}/${u(database)}`;
  }

  /** For messages: the URL with the password replaced by ***. */
  safeUrl(database?: string): string {
    return redactUrl(this.url(database));
  }

  log(line: string): void {
    this.#onLog(`[${this.name}] ${redactText(line, [this.password])}`);
  }

  async isRunning(): Promise<boolean> {
    return postmasterPid(this.dataDir) !== undefined;
  }

  /**
   * First start: pick a free port, and if someone grabs it before the postmaster binds, pick
   * another. A restart keeps the port (URLs handed out must stay valid) and fails loudly instead.
   */
  async launch(firstStart: boolean): Promise<void> {
    const bins = await pgBinaries();
    const who = resolveRunAs();
    trackServer(this.dataDir);
    for (let attempt = 1; ; attempt++) {
      if (firstStart) {
        this.#port = await freePort();
        const socketOk = `${this.serverDir}/.s.PGSQL.${this.#port}`.length < 100;
        // A too-long socket path would stop the server; pg_ctl -w needs no socket anyway.
        await writeConf(this.dataDir, { ...this.settings, port: String(this.#port), unix_socket_directories: socketOk ? this.serverDir : '' });
        if (who) await fsp.lchown(path.join(this.dataDir, 'shardctl.conf'), who.uid, who.gid);
      }
      const logStart = await fsp.stat(this.logFile).then((s) => s.size, () => 0);
      const t0 = Date.now();
      const r = await run(bins.pg_ctl, ['start', '-w', '-t', '120', '-s', '-D', this.dataDir, '-l', this.logFile], who);
      if (r.code === 0) {
        this.log(`started on ${HOST}:${this.#port} in ${Date.now() - t0} ms`);
        return;
      }
      const tail = await readFrom(this.logFile, logStart);
      const pid = postmasterPid(this.dataDir);
      if (pid !== undefined) process.kill(pid, 'SIGKILL'); // pg_ctl gave up waiting; do not leak it
      if (firstStart && attempt < 6 && PORT_TAKEN.test(tail)) {
        this.log(`port ${this.#port} was taken, retrying`);
        continue;
      }
      untrackServer(this.dataDir);
      const detail = redactText(`${tail}\n${r.stderr}`, [this.password]).trim().split('\n').slice(-15).join('\n');
      throw new Error(`could not start PostgreSQL server ${this.name} (${this.safeUrl()}, data ${this.dataDir}):\n${detail}`);
    }
  }

  async start(): Promise<void> {
    if (await this.isRunning()) return;
    await this.launch(this.#port === 0);
  }

  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    const bins = await pgBinaries();
    const who = resolveRunAs();
    if (postmasterPid(this.dataDir) !== undefined) {
      await run(bins.pg_ctl, ['stop', '-D', this.dataDir, '-m', mode, '-w', '-t', mode === 'fast' ? '30' : '10', '-s'], who);
      if (mode === 'fast' && postmasterPid(this.dataDir) !== undefined) {
        this.log('fast shutdown did not finish; immediate');
        await run(bins.pg_ctl, ['stop', '-D', this.dataDir, '-m', 'immediate', '-w', '-t', '10', '-s'], who);
      }
      const pid = postmasterPid(this.dataDir);
      if (pid !== undefined) {
        this.log('immediate shutdown did not finish; SIGKILL');
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
        for (let i = 0; i < 100 && pidAlive(pid); i++) await sleep(20);
      }
      this.log(`stopped (${mode})`);
    }
    untrackServer(this.dataDir);
  }

  async promote(): Promise<void> {
    const bins = await pgBinaries();
    const r = await run(bins.pg_ctl, ['promote', '-w', '-t', '60', '-s', '-D', this.dataDir], resolveRunAs());
    if (r.code !== 0) throw new Error(`could not promote ${this.name}: ${redactText(r.stderr || r.stdout, [this.password]).trim()}`);
    this.log('promoted');
  }

  async query<T = any>(sql: string, params?: unknown[]): Promise<T[]> {
    return withClient(this.connection(), async (c) => {
      const res = (await c.query(sql, params as any[] | undefined)) as unknown;
      // A multi-statement string without parameters yields one result per statement.
      const last = Array.isArray(res) ? res[res.length - 1] : res;
      return ((last as pg.QueryResult | undefined)?.rows ?? []) as T[];
    });
  }

  connection(database: string = this.database, password: string = this.password): pg.ClientConfig {
    return { host: HOST, port: this.#port, user: this.user, password, database, connectionTimeoutMillis: 15_000 };
  }
}

export async function withClient<R>(config: pg.ClientConfig, fn: (c: pg.Client) => Promise<R>): Promise<R> {
  const c = new pg.Client(config);
  c.on('error', () => {}); // a server stopping under an idle client must not crash the process
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => {});
  }
}

async function readFrom(file: string, offset: number): Promise<string> {
  try {
    const buf = await fsp.readFile(file);
    return buf.subarray(offset).toString('utf8');
  } catch {
    return '';
  }
}

const quoteIdent = (s: string) => `"${s.replace(/"/g, '""')}"`;

/** Prepare <dir>/<name>/ (server dir owned by the server user) and make sure it can work there. */
export async function makeServerDir(dir: string, name: string): Promise<string> {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name)) throw new Error(`invalid server name: ${JSON.stringify(name)}`);
  const serverDir = path.join(path.resolve(dir), name);
  await fsp.mkdir(serverDir, { recursive: true });
  const existing = await fsp.readdir(serverDir);
  if (existing.length > 0) throw new Error(`server directory ${serverDir} is not empty`);
  return serverDir;
}

export async function handOver(serverDir: string): Promise<void> {
  const who = resolveRunAs();
  if (!who) return;
  await chownTree(serverDir, who);
  assertUsableBy(serverDir, who);
}

/** A new primary from the template: copy, start, set the password, create the database. */
export async function startServer(opts: StartServerOptions): Promise<ServerHandle> {
  return startPgServer(opts);
}

export async function startPgServer(opts: StartServerOptions): Promise<PgServer> {
  const tpl = await getTemplate();
  const serverDir = await makeServerDir(opts.dir, opts.name);
  const server = new PgServer({
    name: opts.name,
    serverDir,
    password: opts.password ?? randomPassword(),
    database: opts.database ?? 'app',
    settings: mergeSettings(baseSettings(), opts.settings),
    onLog: opts.onLog,
  });
  await copyDataDir(tpl.dataDir, server.dataDir);
  await handOver(serverDir);
  await server.launch(true);
  try {
    await withClient(server.connection('postgres', tpl.password), async (c) => {
      await c.query(`ALTER ROLE ${quoteIdent(server.user)} PASSWORD '${scramVerifier(server.password)}'`);
      if (server.database !== 'postgres') await c.query(`CREATE DATABASE ${quoteIdent(server.database)}`);
    });
  } catch (e) {
    await server.stop('immediate').catch(() => {});
    throw new Error(`could not prepare ${server.name}: ${redactText((e as Error).message, [server.password, tpl.password])}`);
  }
  return server;
}
