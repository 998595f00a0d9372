import type { Finding, Sums, VerifyResult } from './types.js';

/**
 * The words of a verify result, shared by the terminal report and the JUnit file: each finding as
 * a line that names unit, table and shard with source and shard figures, plus a `fix:` line with
 * the command or action that repairs it. Plain text (no colour): CI logs and XML carry it as is.
 */

const n = (x: number) => x.toLocaleString('en-US');
const rows = (x: number) => `${n(x)} row${x === 1 ? '' : 's'}`;
const pct = (a: number, b: number) => `${b ? ((100 * a) / b).toFixed(1) : '0.0'}%`;
const short = (c: string) => (c.length > 12 ? `${c.slice(0, 12)}…` : c);

/** `shardctl migrate --resync --units 3,7 --config shardctl.yaml` */
export function resyncCommand(units: readonly string[], configFile: string): string {
  return `shardctl migrate --resync --units ${units.join(',')} --config ${shellWord(configFile)}`;
}

function shellWord(s: string): string {
  return /^[\w./:@%+=,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

function compareSums(a: Sums, b: Sums, what: string): string {
  if (a.rows !== b.rows) return `source ${rows(a.rows)}, ${what} ${rows(b.rows)}`;
  return `${rows(a.rows)} on both, checksums differ (source ${short(a.checksum)}, ${what} ${short(b.checksum)})`;
}

/** One finding as a headline and a fix line. */
export function describe(f: Finding, r: Pick<VerifyResult, 'configFile' | 'mode' | 'placementsFrom'>): { tag: string; text: string; fix: string } {
  const placedOn = r.placementsFrom === 'catalog' ? 'is placed on' : 'routes to';
  // a unit created on the shards after migrate has no placement: its route is all verify knows
  const lives = (unplaced?: true) => (unplaced ? 'has no placement, routes to' : placedOn);
  switch (f.kind) {
    case 'mismatch':
      return {
        tag: 'MISMATCH',
        text: `unit ${f.unit}, table ${f.table}, shard ${f.shard}: ${compareSums(f.source, f.target, 'shard')}`,
        fix: resyncCommand([f.unit], r.configFile),
      };
    case 'misplaced': {
      const list = f.units.slice(0, 10).map((u) => `${u.unit} (${rows(u.rows)}, ${lives(u.unplaced)} ${u.home})`).join(', ');
      const more = f.units.length > 10 ? `, and ${f.units.length - 10} more` : '';
      return {
        tag: 'MISPLACED',
        text: `table ${f.table}, shard ${f.shard}: ${rows(f.rows)} of ${f.units.length} unit(s) that live on other shards: unit ${list}${more}`,
        fix: `delete those units' rows from ${f.shard}; if their own shard lacks them, ${resyncCommand(f.units.slice(0, 10).map((u) => u.unit), r.configFile)}`,
      };
    }
    case 'duplicated': {
      const at = f.shards.map((s) => `${s.shard}${s.shard === f.home ? ' (its shard)' : ''}: ${rows(s.rows)} in ${s.tables.length} table(s)`).join('; ');
      const extra = f.shards.filter((s) => s.shard !== f.home).map((s) => s.shard);
      return {
        tag: 'DUPLICATED',
        text: `unit ${f.unit} is on ${f.shards.length} shards (it ${lives(f.unplaced)} ${f.home}): ${at}`,
        fix: `delete unit ${f.unit} from ${extra.join(', ')}${f.shards.some((s) => s.shard === f.home) ? '' : `, then ${resyncCommand([f.unit], r.configFile)}`}`,
      };
    }
    case 'orphans':
      return {
        tag: 'ORPHANS',
        text: `table ${f.table}, ${f.shard === 'source' ? 'source' : `shard ${f.shard}`}: ${rows(f.rows)} belong to no unit (a NULL key, or no parent row there)`,
        fix: f.shard === 'source' ? 'fix or delete those rows on the source; migrate cannot place them' : `delete those rows from ${f.shard}, or restore their parent rows`,
      };
    case 'copies': {
      const what = f.shards.map((s) => `${s.state === 'missing' ? 'missing on' : s.state === 'differs' ? 'differs on' : 'also on'} ${s.shard}`).join(', ');
      const extra = f.shards.filter((s) => s.state === 'unexpected').map((s) => s.shard);
      const recopy = f.shards.some((s) => s.state !== 'unexpected');
      return {
        tag: 'COPIES',
        text: `table ${f.table}, row ${f.key} (units ${f.units.join(', ')}; must be on ${f.expected.join(' and ')}): ${what}`,
        fix: [
          ...(extra.length ? [`delete row ${f.key} of ${f.table} from ${extra.join(', ')}`] : []),
          ...(recopy && r.mode === 'full' ? [resyncCommand(f.units, r.configFile)] : []),
          ...(recopy && r.mode !== 'full' ? [`make row ${f.key} of ${f.table} the same on ${f.expected.join(' and ')}`] : []),
        ].join('; then '),
      };
    }
    case 'reference':
      return {
        tag: 'REFERENCE',
        text: `reference table ${f.table}, shard ${f.shard}: ${
          f.actual.rows !== f.expected.rows ? `${rows(f.actual.rows)}, ${f.expectedFrom} ${rows(f.expected.rows)}` : `${rows(f.actual.rows)} as on ${f.expectedFrom}, checksums differ`
        }`,
        fix:
          r.mode === 'full'
            ? `shardctl migrate --tables ${shellWord(f.table)} --config ${shellWord(r.configFile)}`
            : `make ${f.table} on ${f.shard} identical to ${f.expectedFrom}`,
      };
    case 'drift':
      return {
        tag: 'DRIFT',
        text: f.message,
        fix: `make ${f.table} on ${f.shard} match ${r.mode === 'full' ? "the source's" : 'the other shards’'} definition${f.blocking ? ' (its data could not be compared)' : ''}`,
      };
  }
}

/** The (shard, table) pairs a finding belongs to: one JUnit testcase each. */
export function locate(f: Finding): { shard: string; table: string }[] {
  if (f.kind === 'copies') return f.shards.map((s) => ({ shard: s.shard, table: f.table }));
  if (f.kind === 'duplicated') {
    return f.shards.filter((s) => s.shard !== f.home).flatMap((s) => s.tables.map((table) => ({ shard: s.shard, table })));
  }
  return [{ shard: f.shard, table: f.table }];
}

/** The whole report for a terminal or a CI log. At most `limit` findings are spelled out (--json has all). */
export function formatReport(r: VerifyResult, opts: { limit?: number; table?: (header: string[], rows: (string | number)[][]) => string } = {}): string {
  const limit = opts.limit ?? 50;
  const lines: string[] = [];
  const sharded = r.checks.length ? new Set(r.checks.filter((c) => c.kind === 'sharded').map((c) => c.table)).size : 0;
  const reference = r.tables.length - sharded;
  const what = `${n(r.units)} units, ${sharded} sharded + ${reference} reference tables, ${r.shards.length} shards`;
  const how = `${r.mode === 'full' ? 'source vs shards' : 'shards only (--placement-only)'}, units' shards from ${r.placementsFrom === 'catalog' ? 'the catalog' : 'routing'}`;
  const took = `${r.seconds.toFixed(1)}s`;
  if (r.errors.length) lines.push(`verify INCOMPLETE: ${r.errors.length} server(s) could not be read; ${r.findings.length} problem(s) among the rest (${what}; ${how}) in ${took}`);
  else if (r.findings.length) lines.push(`verify FAILED: ${r.findings.length} problem(s) (${what}; ${how}) in ${took}`);
  else lines.push(`verify OK: everything matches (${what}; ${how}) in ${took}`);
  for (const w of r.warnings) lines.push(`warning: ${w}`);
  for (const c of r.crossShard ?? []) lines.push(`cross-shard rows: ${c.table} ${n(c.crossShard)} of ${n(c.rows)} (${pct(c.crossShard, c.rows)}) live on more than one shard`);
  if (opts.table) {
    lines.push('');
    lines.push(opts.table(['shard', 'units', 'rows', 'problems'], r.shards.map((s) => [s.shard, n(s.units), n(s.rows), s.error ? 'unreadable' : n(s.problems)])));
  }
  if (r.errors.length || r.findings.length) lines.push('');
  for (const e of r.errors) lines.push(`ERROR      ${e.message}`);
  const width = 11;
  for (const f of r.findings.slice(0, limit)) {
    const d = describe(f, r);
    lines.push(`${d.tag.padEnd(width)}${d.text}`);
    lines.push(`${''.padEnd(width)}fix: ${d.fix}`);
  }
  if (r.findings.length > limit) lines.push(`… and ${r.findings.length - limit} more (run with --json for every finding)`);
  const resync = [...new Set(r.findings.flatMap((f) => (f.kind === 'mismatch' ? [f.unit] : [])))];
  if (resync.length > 1) {
    const shown = resync.slice(0, 100);
    const more = resync.length > shown.length ? ` (the first ${shown.length} of ${resync.length}; --json lists all)` : '';
    lines.push('', `re-copy the mismatched units at once${more}: ${resyncCommand(shown, r.configFile)}`);
  }
  return lines.join('\n');
}
