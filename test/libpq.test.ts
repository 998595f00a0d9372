import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startServer, type ServerHandle } from '../harness/fleet/index.js';
import { runCli } from './helpers/cli.js';
import { sql } from './helpers/fleet.js';

/**
 * Connection URLs mean what they mean to libpq: sslmode=require encrypts without checking the
 * certificate (and prints no SECURITY WARNING), a Unix socket is `?host=/dir`, and a certificate file
 * that cannot be read or a malformed %-escape is one line naming the server or the config key. One
 * real server, given a self-signed certificate (which verify-full must still refuse).
 */
describe('libpq conventions: sslmode, Unix sockets, bad certificate paths and escapes', () => {
  let dir: string;
  let server: ServerHandle;
  let url: URL;

  const configWith = (name: string, at: string, catalog = at) => {
    const file = path.join(dir, name);
    writeFileSync(file, `source: "${at}"
catalog: "${catalog}"
strategy: { kind: jump, key: restaurant_id }
shards:
  - { id: s0, primary: "${at}" }
tables:
  - { name: restaurants, key: id }
health: { latencyMs: { warning: 100000, critical: 100000 } }
`);
    return file;
  };
  const withQuery = (q: string) => `${url.toString()}?${q}`;

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'shardctl-libpq-'));
    chmodSync(dir, 0o755); // the server may run as another OS user
    server = await startServer({ name: 'one', dir });
    url = new URL(server.url());
    // a self-signed certificate, owned by whoever runs the server (PostgreSQL checks the key's owner and mode)
    const serverDir = path.dirname(server.dataDir);
    const key = path.join(serverDir, 'server.key');
    const crt = path.join(serverDir, 'server.crt');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', crt, '-days', '2', '-subj', '/CN=shardctl-test'], { stdio: 'ignore' });
    const owner = statSync(server.dataDir);
    for (const f of [key, crt]) {
      if (process.getuid?.() === 0) chownSync(f, owner.uid, owner.gid);
      chmodSync(f, 0o600);
    }
    await sql(server.url(), `ALTER SYSTEM SET ssl_cert_file = '${crt}'`);
    await sql(server.url(), `ALTER SYSTEM SET ssl_key_file = '${key}'`);
    await sql(server.url(), `ALTER SYSTEM SET ssl = on`);
    await sql(server.url(), 'SELECT pg_reload_conf()');
  });
  after(async () => {
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const health = (file: string) => {
    const r = runCli(['health', '--json', '--no-catalog', '--config', file]);
    return { ...r, report: r.stdout ? JSON.parse(r.stdout) : undefined };
  };

  it('sslmode=require connects over TLS without checking the certificate, and says nothing about it', () => {
    const r = health(configWith('require.yaml', withQuery('sslmode=require')));
    assert.doesNotMatch(r.stderr, /SECURITY WARNING|treated as|verify-full/);
    assert.equal(r.report.servers[0].up, true, r.stdout + r.stderr);
    // verify-full keeps its meaning: a self-signed certificate is refused
    const full = health(configWith('full.yaml', withQuery('sslmode=verify-full')));
    assert.equal(full.report.servers[0].up, false, full.stdout);
    assert.doesNotMatch(full.stderr, /SECURITY WARNING/);
  });

  it('a Unix-socket URL (?host=/dir) is a server like any other', async () => {
    const socketDir = path.dirname(server.dataDir);
    const socket = `postgresql://${url.username}:${url.password}@/${url.pathname.slice(1)}?host=${socketDir}&port=${url.port}`;
    const file = configWith('socket.yaml', socket);
    const r = health(file);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.equal(r.report.servers[0].up, true);
    assert.doesNotMatch(r.stdout + r.stderr, new RegExp(url.password));
    assert.match(r.report.servers[0].url, /^postgresql:\/\/\w+:\*\*\*@\/\w+\?host=\//);
    // the catalog over the socket too: a run is recorded there
    const plan = runCli(['rebalance', '--config', file]);
    assert.equal(plan.status, 0, plan.stderr);
  });

  it('a certificate file that cannot be read is one line naming the server and the file: exit 3, no stack', () => {
    const file = configWith('nocert.yaml', url.toString(), withQuery('sslmode=verify-full&sslrootcert=/nonexistent/root.crt'));
    const r = runCli(['rebalance', '--config', file]);
    assert.equal(r.status, 3, r.stderr);
    assert.match(r.stderr, /catalog \(postgres:\/\/\w+:\*\*\*@127\.0\.0\.1:\d+\/\w+\): cannot connect: the certificate or key file \/nonexistent\/root\.crt cannot be read \(no such file\)/);
    assert.doesNotMatch(r.stderr, /internal error|This is a bug|\s+at\s+\S+\.js/);
    assert.doesNotMatch(r.stderr, new RegExp(url.password));
  });

  it('a malformed %-escape in a URL is a config error naming the key: exit 2', () => {
    const bad = url.toString().replace(`:${url.password}@`, ':50%zz@');
    const file = configWith('escape.yaml', url.toString(), bad);
    const r = runCli(['rebalance', '--config', file]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /catalog: connection URL has a malformed %-escape/);
    assert.doesNotMatch(r.stderr, /internal error|50%zz/);
  });
});
