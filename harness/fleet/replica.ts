// A physical streaming replica made the way pg_basebackup does it, without pg_basebackup (not
// shipped): a non-exclusive base backup on a session kept open, a file copy of the running
// primary, backup_label from pg_backup_stop, standby.signal, and a replication slot so the
// primary keeps every WAL segment the standby still needs. The primary never stops.
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type pg from 'pg';
import { mergeSettings, quoteConninfo, readConf } from './conf.js';
import { copyLiveDataDir } from './copy.js';
import { handOver, makeServerDir, PgServer, withClient } from './server.js';
import { sleep } from './proc.js';
import { redactText } from '../../src/index.js';
import type { CreateReplicaOptions, ServerHandle } from './types.js';

/** Replication slot names allow only [a-z0-9_]. */
export function slotName(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9_]/g, '_');
}

const LAUNCH_KEYS = new Set(['port', 'unix_socket_directories', 'primary_conninfo', 'primary_slot_name']);

export async function createReplica(primary: ServerHandle, opts: CreateReplicaOptions): Promise<ServerHandle> {
  const slot = slotName(opts.name);
  const serverDir = await makeServerDir(opts.dir, opts.name);
  const admin = { host: primary.host, port: primary.port, user: primary.user, password: primary.password, database: 'postgres', connectionTimeoutMillis: 15_000 };
  const t0 = Date.now();
  const log = (l: string) => opts.onLog?.(`[${opts.name}] ${redactText(l, [primary.password])}`);

  let replica: PgServer | undefined;
  let slotCreated = false;
  try {
    // Slot first (reserving WAL now), so nothing written after the backup starts is recycled.
    await withClient(admin, async (c) => {
      await c.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active', [slot]);
      await c.query('SELECT pg_create_physical_replication_slot($1, true)', [slot]);
      slotCreated = true;
    });
    const dataDir = path.join(serverDir, 'data');
    await withClient(admin, async (c) => {
      await c.query('SELECT pg_backup_start($1, true)', [`shardctl replica ${opts.name}`]);
      try {
        await copyLiveDataDir(primary.dataDir, dataDir);
      } catch (e) {
        await c.query('SELECT pg_backup_stop(false)').catch(() => {});
        throw e;
      }
      // No WAL archive here (the slot streams it), so do not wait for archiving.
      const { rows } = await c.query<{ labelfile: string; spcmapfile: string | null }>('SELECT labelfile, spcmapfile FROM pg_backup_stop(false)');
      const stop = rows[0];
      if (!stop) throw new Error('pg_backup_stop returned nothing');
      await fsp.writeFile(path.join(dataDir, 'backup_label'), stop.labelfile, { mode: 0o600 });
      if (stop.spcmapfile) await fsp.writeFile(path.join(dataDir, 'tablespace_map'), stop.spcmapfile, { mode: 0o600 });
    });
    await fsp.writeFile(path.join(dataDir, 'standby.signal'), '', { mode: 0o600 });
    const inherited = Object.fromEntries(Object.entries(await readConf(dataDir)).filter(([k]) => !LAUNCH_KEYS.has(k.toLowerCase())));
    const conninfo = [
      `host=${primary.host}`,
      `port=${primary.port}`,
      `user=${quoteConninfo(primary.user)}`,
      `password=${quoteConninfo(primary.password)}`,
      `application_name=${quoteConninfo(opts.name)}`,
    ].join(' ');
    replica = new PgServer({
      name: opts.name,
      serverDir,
      password: primary.password,
      database: primary.database,
      settings: mergeSettings(inherited, opts.settings, { primary_conninfo: conninfo, primary_slot_name: slot }),
      onLog: opts.onLog,
    });
    await handOver(serverDir);
    await replica.launch(true);
    await waitStreaming(admin, opts.name);
    log(`streaming from ${primary.name} (slot ${slot}) after ${Date.now() - t0} ms`);
    return replica;
  } catch (e) {
    await replica?.stop('immediate').catch(() => {});
    // A forgotten slot would make the primary keep WAL forever.
    if (slotCreated) await withClient(admin, (c) => c.query('SELECT pg_drop_replication_slot($1)', [slot])).catch(() => {});
    await fsp.rm(serverDir, { recursive: true, force: true }); // so the name can be reused
    throw new Error(`could not create replica ${opts.name} of ${primary.name}: ${redactText((e as Error).message, [primary.password])}`);
  }
}

/** pg_ctl -w returns once the standby is consistent; also wait until the primary sees it stream. */
async function waitStreaming(admin: pg.ClientConfig, name: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await withClient(admin, async (c) => {
      const r = await c.query(`SELECT 1 FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'`, [name]);
      return r.rowCount === 1;
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`standby ${name} did not start streaming within ${timeoutMs} ms`);
    await sleep(50);
  }
}
