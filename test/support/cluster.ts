// Helpers for tests of `run --queue` and `tlpipe worker`: workers as child
// processes, lines they print, and what the remote holds.
import type { ResultPromise } from 'execa';
import fs from 'node:fs/promises';
import path from 'node:path';
import { start } from './faults.js';

export interface WorkerProcess {
  child: ResultPromise;
  name: string;
  /** Everything it printed so far. */
  output(): string;
  /** Resolves with the first match of `pattern` in its output (past or future). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
}

const started: WorkerProcess[] = [];

/** Kills every worker a test started and left running (a failed assertion skips its stopWorker). */
export async function killWorkers(): Promise<void> {
  for (const w of started.splice(0)) {
    if (w.child.exitCode === null || w.child.exitCode === undefined) w.child.kill('SIGKILL');
    await w.child.catch(() => undefined);
  }
}

export function startWorker(
  name: string,
  options: { queue: string; remote: string; dataRoot: string; cwd: string; models?: string; extra?: string[]; env?: Record<string, string> },
): WorkerProcess {
  const args = ['worker', '--queue', options.queue, '--remote', options.remote, '--data-root', options.dataRoot, '--name', name, ...(options.models ? ['--models', options.models] : []), ...(options.extra ?? [])];
  const child = start(args, { cwd: options.cwd, env: options.env, timeoutMs: 600_000 });
  let text = '';
  const waiters: (() => void)[] = [];
  child.stderr?.on('data', (d: Buffer) => {
    text += d.toString();
    for (const w of waiters.splice(0)) w();
  });
  child.catch(() => undefined);
  const w: WorkerProcess = {
    child,
    name,
    output: () => text,
    waitFor(pattern, timeoutMs = 60_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`worker ${name} did not print ${pattern} in ${timeoutMs} ms; it printed:\n${text.slice(-1500)}`)), timeoutMs);
        const check = () => {
          const m = pattern.exec(text);
          if (m) {
            clearTimeout(timer);
            resolve(m);
          } else waiters.push(check);
        };
        check();
      });
    },
  };
  started.push(w);
  return w;
}

/** Stops a worker with SIGTERM and returns its exit code (killed with SIGKILL after 20 s). */
export async function stopWorker(w: WorkerProcess): Promise<number | undefined> {
  if (w.child.exitCode !== null && w.child.exitCode !== undefined) return w.child.exitCode;
  w.child.kill('SIGTERM');
  const timer = setTimeout(() => w.child.kill('SIGKILL'), 20_000);
  const r = await w.child.catch((e: { exitCode?: number }) => e);
  clearTimeout(timer);
  return (r as { exitCode?: number }).exitCode;
}

/** Where a folder remote keeps a job's result. */
export const resultFile = (remoteDir: string, jobId: string) => path.join(remoteDir, 'jobs', `${jobId}.result`);

/** The worker named in each result a folder remote holds, by job id (signed results read past their signature). */
export async function resultWorkers(remoteDir: string): Promise<Map<string, string>> {
  const dir = path.join(remoteDir, 'jobs');
  const out = new Map<string, string>();
  for (const name of await fs.readdir(dir).catch(() => [] as string[])) {
    if (!name.endsWith('.result')) continue;
    let bytes = await fs.readFile(path.join(dir, name));
    if (bytes.subarray(0, 6).toString('ascii') === 'TLSIG1') bytes = bytes.subarray(6 + 64);
    const length = bytes.readUInt32LE(8);
    out.set(name.slice(0, -'.result'.length), (JSON.parse(bytes.toString('utf8', 12, 12 + length)) as { worker: string }).worker);
  }
  return out;
}

/** The features artifact's files (sha256 by name) in a store. */
export async function featuresFiles(storeRoot: string): Promise<Record<string, string>> {
  const dir = path.join(storeRoot, 'artifacts');
  for (const name of await fs.readdir(dir)) {
    const entry = JSON.parse(await fs.readFile(path.join(dir, name), 'utf8')) as { stage: string; files: Record<string, { sha256: string }> };
    if (entry.stage === 'features') return Object.fromEntries(Object.entries(entry.files).map(([k, v]) => [k, v.sha256]));
  }
  throw new Error(`no features artifact in ${storeRoot}`);
}
