import { readFileSync } from 'node:fs';
import os from 'node:os';

export interface MachineState {
  cpus: number;
  node: string;
  /** 1/5/15-minute load averages */
  load: number[];
  /** share of all CPUs busy over a short window (from /proc/stat), before the bench starts anything: other people's work */
  busyPct?: number;
}

function cpuTimes(): { busy: number; total: number } | undefined {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const idle = (f[3] ?? 0) + (f[4] ?? 0);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

/** Load and CPU use over `ms` (Linux; elsewhere busyPct is left out). */
export async function machineState(ms = 2000): Promise<MachineState> {
  const a = cpuTimes();
  await new Promise((r) => setTimeout(r, ms));
  const b = cpuTimes();
  const busyPct = a && b && b.total > a.total ? (100 * (b.busy - a.busy)) / (b.total - a.total) : undefined;
  return { cpus: os.cpus().length, node: process.version, load: os.loadavg(), ...(busyPct === undefined ? {} : { busyPct }) };
}
