import type pg from 'pg';
import { connect, destroy, type Endpoint } from '../db/connect.js';
import { beginSnapshot } from '../db/snapshot.js';

/**
 * A source transaction held open for a whole migrate run, its snapshot exported so every batch can
 * read exactly the same data (SET TRANSACTION SNAPSHOT). While it is open, the source's vacuum
 * cannot remove rows the snapshot may see: the price of a run-wide consistent view (pgcopydb pays
 * it too). Ended by closing the client.
 */
export interface RunSnapshot {
  readonly client: pg.Client;
  readonly snapshot: string;
}

/** `imported`: a snapshot exported elsewhere (an online migration's slot) to hold instead of a new one. */
export async function openRunSnapshot(source: Endpoint, imported?: string): Promise<RunSnapshot> {
  const client = await connect(source, { applicationName: 'shardctl migrate snapshot' });
  try {
    await beginSnapshot(client, imported);
    const snapshot = imported ?? ((await client.query('SELECT pg_export_snapshot() AS s')).rows[0].s as string);
    return { client, snapshot };
  } catch (e) {
    destroy(client);
    throw e;
  }
}
