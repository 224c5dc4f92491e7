// The remote cache's two figures, from one run on this machine:
//   node dist/bench/remote.js [--images N] [--repeats R]
// 1. Pull vs compute for the catsdogs features: clone A computes the features
//    stage (and pushes it to an S3 remote: s3rver on loopback); clone B, a
//    fresh folder and store, pulls it. Ratio: B's stage time / A's.
// 2. The cost of a remote on a fully cached run: the same cached run, R times
//    each, alternating with and without the remote configured. Ratio of the
//    medians (the goal is at most 1.10).
// Needs the shared fixtures (the backbone and the catsdogs-2k photos).
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startS3Server } from '../test/support/s3-server.js';

const exec = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const cli = path.join(root, 'dist', 'src', 'bin.cjs');
const fixtures = process.env.TLPIPE_FIXTURES ?? path.join(root, '..', 'shared', 'fixtures');
const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const repeats = arg('--repeats', 7);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

interface Summary {
  stages: { name: string; status: string; durationMs: number; pulledBytes?: number }[];
}

async function clone(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tlpipe-bench-remote-'));
  await mkdir(path.join(dir, 'pipelines'));
  await cp(path.join(root, 'pipelines', 'catsdogs.yaml'), path.join(dir, 'pipelines', 'catsdogs.yaml'));
  await cp(path.join(root, 'package.json'), path.join(dir, 'package.json'));
  return dir;
}

async function run(dir: string, env: Record<string, string>, extra: string[] = []): Promise<{ summary: Summary; wallMs: number }> {
  const started = performance.now();
  const { stdout } = await exec(process.execPath, [cli, 'run', 'pipelines/catsdogs.yaml', '--json', '--set', `data=${path.join(fixtures, 'datasets', 'catsdogs-2k')}`, ...extra], {
    cwd: dir,
    env: { ...process.env, CI: 'true', NO_COLOR: '1', TLPIPE_MODELS: path.join(fixtures, 'models'), ...env },
    maxBuffer: 64 * 1024 * 1024,
  });
  return { summary: JSON.parse(stdout) as Summary, wallMs: performance.now() - started };
}

const s3 = await startS3Server('tlpipe-bench');
const dirs: string[] = [];
try {
  const env = { ...s3.env, TLPIPE_REMOTE: `s3://${s3.bucket}/catsdogs` };
  const a = await clone();
  const b = await clone();
  dirs.push(a, b);
  const first = await run(a, env);
  const computed = first.summary.stages.find((s) => s.name === 'features')!;
  if (computed.status !== 'ran') throw new Error(`features ${computed.status} in the first clone`);
  const second = await run(b, env);
  const pulled = second.summary.stages.find((s) => s.name === 'features')!;
  if (pulled.status !== 'pulled') throw new Error(`features ${pulled.status} in the second clone`);
  console.log(
    `features (3,003 images): computed in ${(computed.durationMs / 1000).toFixed(1)} s, pulled in ${(pulled.durationMs / 1000).toFixed(2)} s (${((pulled.pulledBytes ?? 0) / 1e6).toFixed(1)} MB from S3 on loopback); pull/compute = ${(pulled.durationMs / computed.durationMs).toFixed(4)}`,
  );

  // The cached run, with and without the remote, alternating so that load changes hit both.
  const withRemote: number[] = [];
  const without: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const x = await run(b, env);
    const y = await run(b, env, ['--no-remote']);
    for (const r of [x, y]) if (!r.summary.stages.every((s) => s.status === 'cached')) throw new Error('a stage was not cached');
    withRemote.push(x.wallMs);
    without.push(y.wallMs);
  }
  console.log(
    `cached run (wall, median of ${repeats}): ${median(without).toFixed(0)} ms without a remote, ${median(withRemote).toFixed(0)} ms with an S3 remote configured; ratio ${(median(withRemote) / median(without)).toFixed(3)} (goal ≤ 1.10)`,
  );
  console.log(`load average at the end: ${os.loadavg().map((l) => l.toFixed(1)).join(' ')} on ${os.cpus().length} cores`);
} finally {
  await s3.close();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
}
