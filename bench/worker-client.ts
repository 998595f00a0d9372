import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { MeasuredPhase, PhaseOutcome, PlanFacts, WorkerReply, WorkerRequest } from './protocol.js';

export interface Worker {
  plan(configPath: string, sampleRows: number): Promise<PlanFacts>;
  phase(phase: MeasuredPhase, concurrency: number, batchRows?: number): Promise<PhaseOutcome>;
  /** abort the phase in flight (the worker replies with an error) */
  interrupt(): void;
  /** end the worker (disconnect; SIGKILL by its pid if it has not exited after 5 s) */
  close(): Promise<void>;
}

type Req = WorkerRequest extends infer R ? (R extends WorkerRequest ? Omit<R, 'id'> : never) : never;

/** Forks bench/worker.js (the measuring process) with --expose-gc and talks to it over IPC. */
export function startWorker(): Worker {
  const child: ChildProcess = fork(fileURLToPath(new URL('./worker.js', import.meta.url)), [], {
    execArgv: ['--expose-gc'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let nextId = 1;
  const pending = new Map<number, { resolve: (r: WorkerReply) => void; reject: (e: Error) => void }>();
  let exited: string | undefined;
  child.on('message', (r: WorkerReply) => {
    const p = pending.get(r.id);
    pending.delete(r.id);
    p?.resolve(r);
  });
  child.on('exit', (code, signal) => {
    exited = `the measuring process exited (${signal ?? `code ${code}`})`;
    for (const p of pending.values()) p.reject(new Error(exited));
    pending.clear();
  });

  const request = (req: Req): Promise<WorkerReply> =>
    new Promise((resolve, reject) => {
      if (exited) return reject(new Error(exited));
      const id = nextId++;
      pending.set(id, { resolve, reject });
      child.send({ ...req, id } as WorkerRequest);
    });
  const unwrap = (r: WorkerReply) => {
    if (!r.ok) throw new Error(r.aborted ? 'interrupted' : r.error);
    return r;
  };

  return {
    async plan(configPath, sampleRows) {
      return unwrap(await request({ type: 'plan', configPath, sampleRows })).plan!;
    },
    async phase(phase, concurrency, batchRows) {
      return unwrap(await request({ type: 'phase', phase, concurrency, ...(batchRows === undefined ? {} : { batchRows }) })).phase!;
    },
    interrupt() {
      if (!exited) child.kill('SIGINT');
    },
    async close() {
      if (exited) return;
      const gone = new Promise<void>((r) => child.once('exit', () => r()));
      if (child.connected) child.disconnect();
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await gone;
      clearTimeout(timer);
    },
  };
}
