// `node dist/bench/cluster.js`: the features stage spread over the queue.
// Measures, in one run on this machine:
//   - the stage on one machine, one core (taskset, 1 onnxruntime thread), no queue;
//   - the same images through `run --queue` with 1 worker pinned to one core;
//   - with 2 workers, each pinned to its own core;
// and prints images/s of each, the 2-worker / 1-worker ratio (goal ≥ 1.8),
// the queue's overhead per job in ms (the 1-worker stage's wall time not
// spent computing a job, per job), and what N machines would take on 100,000 images, computed from
// those measured costs. The run only coordinates (TLPIPE_QUEUE_LOCAL_JOBS=0),
// so that the workers' cores are the only ones computing.
// Flags: --images N (default 600), --chunk N (default 32), --reps N (default 1).
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { cliPath } from '../test/support/cli.js';
import { fixture, haveFixtures } from '../test/support/fixtures.js';
import { startRedis } from '../test/support/redis.js';

const arg = (flag: string, dflt: number) => {
  const i = process.argv.indexOf(flag);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const IMAGES = arg('--images', 600);
const CHUNK = arg('--chunk', 32);
const REPS = arg('--reps', 1);

const PIPELINE = `tlpipe: 1
name: bench-cluster
params: {data: data}
stages:
  dataset: {uses: images.dataset, with: {layout: filename, train: "\${data}/train", labelRule: {type: contains, classes: [cat, dog], otherwise: dog}, valFraction: 0.2}}
  backbone: {uses: backbone.load, with: {model: mobilenetv2-12-int8}}
  transform: {uses: images.transform, inputs: {backbone: backbone}, with: {resize: 256, centerCrop: 224}}
  freeze: {uses: backbone.freeze, inputs: {backbone: backbone}}
  features: {uses: features.extract, inputs: {dataset: dataset, transform: transform, model: freeze}, with: {device: cpu, intraOpThreads: 1, chunkSize: ${CHUNK}}}
`;

interface Proc {
  pid: number;
  done: Promise<{ code: number | null; out: string; err: string }>;
  kill(sig?: NodeJS.Signals): void;
  err(): string;
}

/** GNU time's line on stderr: the CPU seconds (user + system) a process used. */
const TIME = ['/usr/bin/time', '-f', 'tlpipe-bench-cpu %U %S'];

function launch(cmd: string[], cwd: string, env: Record<string, string>, cores?: string, timed = false): Proc {
  const argv = [...(timed ? TIME : []), ...(cores ? ['taskset', '-c', cores] : []), 'node', cliPath, ...cmd];
  const child = spawn(argv[0]!, argv.slice(1), { cwd, env: { ...process.env, CI: '1', NO_COLOR: '1', TLPIPE_MODELS: fixture('models'), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  return {
    pid: child.pid!,
    done: new Promise((resolve) => child.on('close', (code) => resolve({ code, out, err }))),
    kill: (sig = 'SIGTERM') => child.kill(sig),
    err: () => err,
  };
}

async function waitFor(p: Proc, pattern: RegExp, ms = 60_000): Promise<void> {
  const start = Date.now();
  while (!pattern.test(p.err())) {
    if (Date.now() - start > ms) throw new Error(`did not see ${pattern}: ${p.err().slice(-800)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** User + system CPU seconds a live process has used (Linux /proc; clock ticks of 1/100 s). */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** CPU seconds the last timed run used (the run alone: the workers are other processes). */
let lastRunCpuS = 0;

/** Runs the pipeline's features stage afresh and returns its duration in ms (from the run's --json summary). */
async function featuresMs(dir: string, env: Record<string, string>, extra: string[], cores?: string): Promise<number> {
  // Forget earlier vectors: the stage must compute every image.
  const chunks = path.join(dir, '.tlpipe', 'chunks');
  for (const name of await fs.readdir(chunks).catch(() => [] as string[])) if (!name.startsWith('image-checks')) await fs.rm(path.join(chunks, name), { recursive: true, force: true });
  const r = await launch(['run', 'pipeline.yaml', '--json', '--force=features', ...extra], dir, env, cores, true).done;
  if (r.code !== 0) throw new Error(`run failed (${r.code}): ${r.err.slice(-1500)}`);
  const cpu = /tlpipe-bench-cpu ([\d.]+) ([\d.]+)/.exec(r.err);
  lastRunCpuS = cpu ? Number(cpu[1]) + Number(cpu[2]) : NaN;
  const summary = JSON.parse(r.out) as { stages: { name: string; durationMs: number }[]; metrics: Record<string, Record<string, number>> };
  const m = summary.metrics.features!;
  if (m.computed !== IMAGES) throw new Error(`the stage computed ${m.computed} images, expected ${IMAGES}:\n${r.err.slice(-3000)}`);
  return summary.stages.find((s) => s.name === 'features')!.durationMs;
}

async function main(): Promise<void> {
  if (!haveFixtures) throw new Error('the shared fixtures are needed (TLPIPE_FIXTURES)');
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tlpipe-bench-cluster-'));
  const redis = await startRedis();
  const procs: Proc[] = [];
  try {
    await fs.writeFile(path.join(dir, 'package.json'), '{}\n');
    await fs.writeFile(path.join(dir, 'pipeline.yaml'), PIPELINE);
    await fs.mkdir(path.join(dir, 'data', 'train'), { recursive: true });
    const source = fixture('datasets', 'catsdogs-2k', 'train');
    const all = (await fs.readdir(source)).sort();
    const names = [...all.filter((n) => n.startsWith('cat')).slice(0, IMAGES / 2), ...all.filter((n) => n.startsWith('dog')).slice(0, IMAGES - Math.floor(IMAGES / 2))];
    for (const n of names) await fs.symlink(path.join(source, n), path.join(dir, 'data', 'train', n));
    const jobs = Math.ceil(IMAGES / CHUNK);
    console.log(`${IMAGES} catsdogs photos, MobileNetV2-int8, chunks of ${CHUNK} (${jobs} jobs); ${os.availableParallelism()} cores, load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')} (a shared machine)`);
    // Warm: the dataset, backbone and freeze stages, and the page cache.
    await featuresMs(dir, {}, [], '0');

    const rows: { local: number; one: number; two: number; overhead: number; busyPerImage: number }[] = [];
    for (let rep = 0; rep < REPS; rep++) {
      const local = await featuresMs(dir, {}, [], '0');
      const spread = async (cores: string[]) => {
        const remote = await fs.mkdtemp(path.join(os.tmpdir(), 'tlpipe-bench-remote-'));
        const ws = cores.map((c, i) =>
          launch(['worker', '--queue', redis.url, '--remote', `file://${remote}`, '--data-root', dir, '--threads', '1', '--name', `bench-${rep}-${i}`, '--models', path.join(remote, 'models-' + i)], dir, { UV_THREADPOOL_SIZE: '4' }, c),
        );
        procs.push(...ws);
        for (const w of ws) await waitFor(w, /worker bench-\d+-\d+: queue/);
        let busyMs = 0;
        let stageMs = 0;
        try {
          const ms = await featuresMs(dir, { TLPIPE_QUEUE_LOCAL_JOBS: '0' }, ['--queue', redis.url, '--remote', `file://${remote}`]);
          // The run only coordinates, unpinned: whatever CPU it uses is taken from the workers' cores.
          console.log(`  the run (coordinating, unpinned) used ${lastRunCpuS.toFixed(1)} s of CPU in all (planning, the cached stages, the queue), the stage took ${(ms / 1000).toFixed(1)} s`);
          stageMs = ms;
          return { ms, busyMs: () => busyMs };
        } finally {
          // How much of its core each pinned worker got: its CPU time (taskset execs node: the same pid) over the stage's wall time.
          const shares = await Promise.all(ws.map(async (w, i) => `worker ${i}: ${((100 * (await cpuSeconds(w.pid))) / (stageMs / 1000)).toFixed(0)} % of core ${cores[i]}`));
          console.log(`  CPU each worker got while the stage ran (its CPU time, start-up included, over the stage's wall time): ${shares.join('; ')}`);
          for (const w of ws) w.kill();
          await Promise.all(ws.map((w) => w.done));
          // What each worker did, from its own lines: jobs, and images/s while computing.
          const each = ws.map((w, i) => {
            const jobs = [...w.err().matchAll(/: (\d+) images in ([\d.]+) s/g)].map((m) => [Number(m[1]), Number(m[2])] as const);
            const images = jobs.reduce((n, [k]) => n + k, 0);
            const seconds = jobs.reduce((n, [, t]) => n + t, 0);
            busyMs += seconds * 1000;
            return `worker ${i} on core ${cores[i]}: ${jobs.length} jobs, ${seconds ? (images / seconds).toFixed(1) : '0'} images/s while computing`;
          });
          console.log(`  ${each.join('; ')}`);
          await fs.rm(remote, { recursive: true, force: true });
        }
      };
      const oneRun = await spread(['0']);
      const twoRun = await spread(['0', '1']);
      const one = oneRun.ms;
      const two = twoRun.ms;
      // The queue's cost: the 1-worker stage's wall time not spent computing a job, per job.
      rows.push({ local, one, two, overhead: (one - oneRun.busyMs()) / jobs, busyPerImage: oneRun.busyMs() / IMAGES });
      const ips = (ms: number) => (IMAGES / (ms / 1000)).toFixed(1);
      console.log(`rep ${rep + 1}: local 1 core ${ips(local)} images/s | queue, 1 worker ${ips(one)} images/s | queue, 2 workers ${ips(two)} images/s | ratio ${(one / two).toFixed(2)}`);
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const local = median(rows.map((r) => r.local));
    const one = median(rows.map((r) => r.one));
    const two = median(rows.map((r) => r.two));
    const ratio = median(rows.map((r) => r.one / r.two));
    const overheadMs = median(rows.map((r) => r.overhead));
    const perImageMs = median(rows.map((r) => r.busyPerImage));
    console.log('');
    console.log(`per image on one worker core: ${perImageMs.toFixed(1)} ms computing (${(local / IMAGES).toFixed(1)} ms in the one-machine stage); queue overhead per job: ${overheadMs.toFixed(0)} ms (wall time of the 1-worker stage not spent computing, per job; a job of ${CHUNK} images computes in ${(perImageMs * CHUNK).toFixed(0)} ms)`);
    console.log('');
    console.log('100,000 images, chunks of 256, each machine like one core of this one (computed from the costs above):');
    console.log('| machines | jobs each | time | images/s |');
    console.log('|---:|---:|---:|---:|');
    const total = 100_000;
    const big = 256;
    const perJob = perImageMs * big + overheadMs;
    for (const n of [1, 2, 4, 8, 16, 32, 64]) {
      const each = Math.ceil(Math.ceil(total / big) / n);
      const seconds = (each * perJob) / 1000;
      console.log(`| ${n} | ${each} | ${seconds >= 3600 ? `${(seconds / 3600).toFixed(1)} h` : `${(seconds / 60).toFixed(1)} min`} | ${(total / seconds).toFixed(0)} |`);
    }
    console.log('');
    console.log(`features on the queue: 1 worker ${(IMAGES / (one / 1000)).toFixed(1)} images/s, 2 workers ${(IMAGES / (two / 1000)).toFixed(1)} images/s, ratio ${ratio.toFixed(2)} (goal 1.8)`);
  } finally {
    for (const p of procs) p.kill('SIGKILL');
    await redis.stop();
    await fs.rm(dir, { recursive: true, force: true });
  }
}

await main();
