import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Who used the CPUs during a phase, from /proc (Linux; elsewhere `undefined`): the bench's own
 * processes (this process, its children — the measuring worker — and every PostgreSQL server of the
 * fleet with its backends) against everything else on the machine, plus the hypervisor's steal.
 * Other people's work and steal are the noise in a phase's numbers; this puts a figure on them.
 */
export interface CpuShare {
  /** % of all CPUs used by the bench's processes */
  ownPct: number;
  /** % of all CPUs used by everything else */
  othersPct: number;
  /** % of all CPUs taken by the hypervisor */
  stealPct: number;
  /** CPU seconds the bench's processes used (Node and every server of the fleet): steadier than wall time on a shared machine */
  ownS: number;
}

interface Sample {
  total: number;
  busy: number;
  steal: number;
  own: number;
}

/** Ticks of every process in the tree rooted at `roots` (live ones, plus what they reaped). */
function ownTicks(roots: readonly number[]): number {
  const procs = new Map<number, { ppid: number; ticks: number }>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(join('/proc', name, 'stat'), 'utf8');
      // "pid (comm) S ppid …": comm may hold spaces and parentheses, so split after the last ')'
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // fields after comm: 0 state, 1 ppid, … 11 utime, 12 stime, 13 cutime, 14 cstime
      procs.set(Number(name), { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]) });
    } catch {
      /* exited meanwhile */
    }
  }
  const children = new Map<number, number[]>();
  for (const [pid, p] of procs) (children.get(p.ppid) ?? children.set(p.ppid, []).get(p.ppid)!).push(pid);
  const seen = new Set<number>();
  const stack = roots.filter((r) => procs.has(r));
  let ticks = 0;
  while (stack.length) {
    const pid = stack.pop()!;
    if (seen.has(pid)) continue;
    seen.add(pid);
    ticks += procs.get(pid)!.ticks;
    stack.push(...(children.get(pid) ?? []));
  }
  return ticks;
}

function sample(roots: readonly number[]): Sample | undefined {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = (f[3] ?? 0) + (f[4] ?? 0);
    return { total, busy: total - idle, steal: f[7] ?? 0, own: ownTicks(roots) };
  } catch {
    return undefined;
  }
}

/** CPU seconds used so far by the process trees rooted at `roots` (live processes and what they reaped); Linux only, else 0. */
export function treeCpuSeconds(roots: readonly number[]): number {
  try {
    return ownTicks(roots) / 100; // USER_HZ: 100 on every Linux
  } catch {
    return 0;
  }
}

/** The postmaster pid of each data directory (first line of postmaster.pid). */
export function postmasterPids(dataDirs: readonly string[]): number[] {
  return dataDirs.flatMap((d) => {
    try {
      const pid = Number.parseInt(readFileSync(join(d, 'postmaster.pid'), 'utf8').split('\n')[0]!, 10);
      return Number.isInteger(pid) && pid > 0 ? [pid] : [];
    } catch {
      return [];
    }
  });
}

/** Starts measuring; the returned function gives the shares since then. */
export function cpuMeter(roots: () => readonly number[]): () => CpuShare | undefined {
  const a = sample(roots());
  return () => {
    const b = sample(roots());
    if (!a || !b || b.total <= a.total) return undefined;
    const total = b.total - a.total;
    const steal = b.steal - a.steal;
    const own = Math.min(b.own - a.own, b.busy - a.busy - steal);
    const others = Math.max(0, b.busy - a.busy - steal - own);
    const pct = (n: number) => (100 * n) / total;
    return { ownPct: pct(Math.max(0, own)), othersPct: pct(others), stealPct: pct(steal), ownS: Math.max(0, own) / 100 }; // USER_HZ 100
  };
}
