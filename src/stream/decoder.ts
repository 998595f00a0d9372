import lr from 'pg-logical-replication';
import type { Pgoutput } from 'pg-logical-replication';
import { lsn, type Lsn } from '../db/lsn.js';

/**
 * Adapter over pg-logical-replication's pgoutput decoder: its messages become the few events the
 * follower needs, with column values kept as the text the source printed (never converted to JS
 * values: a Date loses microseconds, a float its last digits). An UPDATE's `undefined` value is
 * pgoutput's 'u' (an unchanged TOASTed column, not sent): the applier leaves that column alone.
 */
export type Row = Record<string, string | null | undefined>;

export type StreamEvent =
  | { kind: 'begin'; commitLsn: Lsn; commitTime: number; xid: number }
  | { kind: 'commit'; endLsn: Lsn; commitTime: number }
  | { kind: 'relation'; table: string; columns: { name: string; typeOid: number }[] }
  | { kind: 'insert'; table: string; row: Row }
  | { kind: 'update'; table: string; old: Row | null; row: Row }
  | { kind: 'delete'; table: string; old: Row }
  | { kind: 'truncate'; tables: string[] }
  | { kind: 'message'; prefix: string; content: string };

const raw = (s: unknown) => s;

/** pgoutput, with every column's value parser replaced by the identity (see above). */
export class TextPgoutput extends lr.PgoutputPlugin {
  override parse(buffer: Buffer): Pgoutput.Message {
    const m = super.parse(buffer);
    // Relation messages arrive before the rows that use them, and the decoder keeps this very
    // object: its columns' parsers are what the following rows are read with.
    if (m.tag === 'relation') for (const c of m.columns) c.parser = raw;
    return m;
  }
}

const tableOf = (r: Pgoutput.MessageRelation) => `${r.schema}.${r.name}`;
const micros = (t: unknown) => Number(BigInt(t as bigint) / 1000n);

export function toEvent(m: Pgoutput.Message): StreamEvent | undefined {
  switch (m.tag) {
    case 'begin':
      return { kind: 'begin', commitLsn: lsn(m.commitLsn), commitTime: micros(m.commitTime), xid: m.xid };
    case 'commit':
      return { kind: 'commit', endLsn: lsn(m.commitEndLsn), commitTime: micros(m.commitTime) };
    case 'relation':
      return { kind: 'relation', table: tableOf(m), columns: m.columns.map((c) => ({ name: c.name, typeOid: c.typeOid })) };
    case 'insert':
      return { kind: 'insert', table: tableOf(m.relation), row: m.new as Row };
    case 'update':
      return { kind: 'update', table: tableOf(m.relation), old: (m.old ?? m.key) as Row | null, row: m.new as Row };
    case 'delete':
      return { kind: 'delete', table: tableOf(m.relation), old: (m.old ?? m.key) as Row };
    case 'truncate':
      return { kind: 'truncate', tables: m.relations.map(tableOf) };
    case 'message':
      return { kind: 'message', prefix: m.prefix, content: Buffer.from(m.content).toString('utf8') };
    default:
      return undefined; // origin, type: nothing to apply
  }
}
