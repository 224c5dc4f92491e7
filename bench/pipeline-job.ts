// The full catsdogs job as a user runs it, timed from outside: the first run
// (fresh cache), the cached rerun, and a rerun with a changed learning rate.
// Part of `npm run bench` (bench/features.ts calls measurePipelineJob).
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { fixture } from '../test/support/fixtures.js';

const run = promisify(execFile);
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const bin = path.join(repoRoot, 'dist', 'src', 'bin.cjs');

interface JobTimes {
  first: number;
  cached: number;
  newLr: number;
  accuracy: number;
}

async function timedRun(args: string[], cacheDir: string): Promise<{ seconds: number; summary: { metrics: Record<string, Record<string, number>>; stages: { status: string }[] } }> {
  const started = performance.now();
  const { stdout } = await run(process.execPath, [bin, 'run', path.join(repoRoot, 'pipelines', 'catsdogs.yaml'), '--json', '--cache-dir', cacheDir, ...args], {
    cwd: repoRoot,
    env: { ...process.env, TLPIPE_MODELS: fixture('models'), CI: 'true' },
    maxBuffer: 64 * 1024 * 1024,
  });
  return { seconds: (performance.now() - started) / 1000, summary: JSON.parse(stdout) };
}

async function once(): Promise<JobTimes> {
  const cacheDir = await mkdtemp(path.join(os.tmpdir(), 'tlpipe-bench-job-'));
  const data = `data=${fixture('datasets', 'catsdogs-2k')}`;
  const out = 'out=out/bench-job';
  try {
    const first = await timedRun(['--set', data, '--set', out], cacheDir);
    const cached = await timedRun(['--set', data, '--set', out], cacheDir);
    if (!cached.summary.stages.every((s) => s.status === 'cached')) throw new Error('the rerun was not entirely cached');
    const newLr = await timedRun(['--set', data, '--set', out, '--set', 'lr=0.0003'], cacheDir);
    return { first: first.seconds, cached: cached.seconds, newLr: newLr.seconds, accuracy: first.summary.metrics.evaluate!.accuracy! };
  } finally {
    await rm(cacheDir, { recursive: true, force: true });
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function measurePipelineJob(options: { reps: number; log: (s: string) => void }): Promise<string[]> {
  const times: JobTimes[] = [];
  for (let r = 0; r < Math.max(1, Math.min(options.reps, 3)); r++) times.push(await once());
  const m = (k: keyof JobTimes) => median(times.map((t) => t[k]));
  return [
    `first run (fresh cache, 3,003 images): ${m('first').toFixed(1)} s, validation accuracy ${(100 * m('accuracy')).toFixed(2)}%`,
    `cached rerun: ${m('cached').toFixed(2)} s (${(m('first') / m('cached')).toFixed(0)}× faster)`,
    `rerun with lr changed: ${m('newLr').toFixed(2)} s (features reused; ${(m('first') / m('newLr')).toFixed(0)}× faster than the first run)`,
    `(medians of ${times.length} run${times.length > 1 ? 's' : ''})`,
  ];
}
