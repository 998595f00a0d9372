import { ONLINE_STEPS, type Step } from './journal.js';
import { groupStreamNames, type MoveGroup } from './online.js';
import { movesOnline } from './move.js';

/**
 * How the moves of one run share streams. Online moves of many units from one shard to another
 * share ONE stream (one slot and publication on the old shard, one copy in its snapshot, one
 * follower, one fence for the final catch-up): a rebalance of 300 units between two shards creates
 * a handful of slots, not 300, and decodes the old shard's WAL once per group, not once per unit.
 * A group is bounded (GROUP_MAX_*), so its slot never holds the old shard's WAL for long: its copy
 * is one bounded piece of work. Offline moves (and a resumed offline move) go one unit at a time.
 */
export const GROUP_MAX_UNITS = 64;
export const GROUP_MAX_ROWS = 2_000_000;
export const GROUP_MAX_BYTES = 1024 ** 3;

/** A planned move as the grouping needs it; `resumeAfter` is the journal's last step, `stream` its group's. */
export interface Groupable {
  unit: string;
  from: string;
  to: string;
  rows: number;
  bytes: number;
  resumeAfter?: Step;
  stream?: string;
}

export type MoveJob<M extends Groupable> =
  | { kind: 'offline'; move: M }
  /** `at`: the step the group resumes after (every move of a group is journaled at the same step) */
  | { kind: 'group'; group: MoveGroup; moves: M[]; at?: Step };

/**
 * The jobs of a run, in the moves' order: a move the journal holds resumes with the group it was
 * journaled with (its stream); new online moves are grouped by (from, to) up to the bounds, a unit
 * larger than them alone.
 */
export function planJobs<M extends Groupable>(moves: readonly M[], online: boolean): MoveJob<M>[] {
  const jobs: MoveJob<M>[] = [];
  const resumed = new Map<string, Extract<MoveJob<M>, { kind: 'group' }>>();
  const open = new Map<string, { job: Extract<MoveJob<M>, { kind: 'group' }>; rows: number; bytes: number }>();
  for (const m of moves) {
    // a journaled stream is finished online whatever this run's mode (its slot must be dropped)
    if (!m.stream && !movesOnline(m.resumeAfter, online)) {
      jobs.push({ kind: 'offline', move: m });
      continue;
    }
    if (m.resumeAfter) {
      // a move journaled before streams were shared has no stream: its own, named by its unit
      const key = m.stream ?? `unit\u0000${m.unit}`;
      const job = resumed.get(key);
      if (job) {
        job.moves.push(m);
        if (ONLINE_STEPS.indexOf(m.resumeAfter as (typeof ONLINE_STEPS)[number]) < ONLINE_STEPS.indexOf(job.at as (typeof ONLINE_STEPS)[number])) job.at = m.resumeAfter;
      } else {
        const names = m.stream ? { slot: m.stream, publication: m.stream } : groupStreamNames([m.unit]);
        const created = { kind: 'group' as const, group: { from: m.from, to: m.to, units: [], names }, moves: [m], at: m.resumeAfter };
        resumed.set(key, created);
        jobs.push(created);
      }
      continue;
    }
    const pair = `${m.from}\u0000${m.to}`;
    const cur = open.get(pair);
    const fits = cur && cur.job.moves.length < GROUP_MAX_UNITS && cur.rows + m.rows <= GROUP_MAX_ROWS && cur.bytes + m.bytes <= GROUP_MAX_BYTES;
    if (cur && fits) {
      cur.job.moves.push(m);
      cur.rows += m.rows;
      cur.bytes += m.bytes;
    } else {
      const job = { kind: 'group' as const, group: { from: m.from, to: m.to, units: [], names: { slot: '', publication: '' } }, moves: [m] };
      open.set(pair, { job, rows: m.rows, bytes: m.bytes });
      jobs.push(job);
    }
  }
  // the group's units and, for a new group, its stream's name (from its units) once it is complete
  return jobs.map((j) => {
    if (j.kind === 'offline') return j;
    const units = j.moves.map((m) => m.unit);
    return { ...j, group: { ...j.group, units, names: j.at ? j.group.names : groupStreamNames(units) } };
  });
}

/** The groups of journaled moves to undo (journaled as started or target-fenced): by stream, else one per unit. */
export function journaledGroups(rows: readonly { unit: string; from: string; to: string; step: Step; stream?: string }[]): { group: MoveGroup; step: Step }[] {
  const jobs = planJobs(rows.map((r) => ({ ...r, rows: 0, bytes: 0, resumeAfter: r.step })), true);
  return jobs.flatMap((j) => (j.kind === 'group' ? [{ group: j.group, step: j.at! }] : [{ group: { from: j.move.from, to: j.move.to, units: [j.move.unit], names: groupStreamNames([j.move.unit]) }, step: j.move.resumeAfter! }]));
}
