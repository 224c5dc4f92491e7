// What bench/gpu/check.sh runs once it knows whether the machine has a GPU.
//
//   node dist/bench/gpu/check.js no-gpu --fixtures DIR --work DIR
//   node dist/bench/gpu/check.js gpu --fixtures DIR --work DIR --backbone 'LABEL=FILE[=pretrained]' ...
//   node dist/bench/gpu/check.js cpu-self-test ...same flags as gpu   (CPU against CPU: tries this
//     script's own pipeline runs, comparisons and table without a GPU; check.sh never runs it)
//
// Both run the catsdogs pipeline with the built CLI, as a user does, each job
// in its own project folder and artifact store: the features cache is keyed by
// model, transform and image, not by device, so a shared store would hand the
// CUDA job the CPU's vectors. `no-gpu` checks that `device: auto` falls back to
// the CPU with its message (and that `device: cuda` refuses with its own);
// `gpu` runs every backbone on the CPU and on CUDA and compares. Exit status 0
// only when every check held.
import { execa } from 'execa';
import { spawn } from 'node:child_process';
import { copyFile, mkdir, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildModel } from '../../src/onnx/builder.js';
import { createSession, cudaProviderInstalled } from '../../src/onnx/runtime.js';
import * as ort from 'onnxruntime-node';

const appRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const bin = path.join(appRoot, 'dist', 'src', 'bin.cjs');

/** Largest relative L2 difference allowed between one image's CPU and CUDA feature vectors (TF32 and kernel choice differ). */
export const FEATURE_TOLERANCE = 2e-2;
/** Largest validation-accuracy difference allowed, in percentage points. */
export const ACCURACY_POINTS = 0.5;
/** The message `device: auto` logs when it falls back (src/onnx/runtime.ts). */
export const FALLBACK_MESSAGE = /device auto: the CUDA provider of onnxruntime-node is (not installed|installed but cannot run here \(.*\)), running on the CPU/;

interface Job {
  label: string;
  dir: string;
  code: number;
  stdout: string;
  stderr: string;
  wallMs: number;
}

interface StoredEntry {
  stage: string;
  durationMs: number;
  files: Record<string, { sha256: string; size: number }>;
  value: Record<string, unknown>;
}

async function newProject(work: string, name: string): Promise<string> {
  const dir = path.join(work, name);
  await rm(dir, { recursive: true, force: true });
  await mkdir(path.join(dir, 'pipelines'), { recursive: true });
  await writeFile(path.join(dir, 'package.json'), '{}\n');
  await copyFile(path.join(appRoot, 'pipelines', 'catsdogs.yaml'), path.join(dir, 'pipelines', 'catsdogs.yaml'));
  return dir;
}

async function runCatsdogs(label: string, dir: string, fixtures: string, sets: string[]): Promise<Job> {
  const started = performance.now();
  const args = [bin, 'run', 'pipelines/catsdogs.yaml', '--json', ...sets.flatMap((s) => ['--set', s])];
  const r = await execa(process.execPath, args, {
    cwd: dir,
    env: { ...process.env, TLPIPE_MODELS: path.join(fixtures, 'models'), CI: 'true', NO_COLOR: '1' },
    reject: false,
    stdin: 'ignore',
    maxBuffer: 256 * 1024 * 1024,
  });
  return { label, dir, code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr), wallMs: performance.now() - started };
}

/** The store's entries of one job, by stage name (each job has its own store, one run). */
async function entries(dir: string): Promise<Map<string, StoredEntry>> {
  const root = path.join(dir, '.tlpipe', 'artifacts');
  const byStage = new Map<string, StoredEntry>();
  for (const name of await readdir(root)) {
    if (!name.endsWith('.json')) continue;
    const e = JSON.parse(await readFile(path.join(root, name), 'utf8')) as StoredEntry;
    byStage.set(e.stage, e);
  }
  return byStage;
}

async function storedFile(dir: string, entry: StoredEntry, file: string): Promise<Buffer> {
  const sha = entry.files[file]?.sha256;
  if (!sha) throw new Error(`stage ${entry.stage} has no file ${file}`);
  return readFile(path.join(dir, '.tlpipe', 'objects', sha.slice(0, 2), sha));
}

function tail(text: string, lines = 15): string {
  return text.trimEnd().split('\n').slice(-lines).map((l) => `    ${l}`).join('\n');
}

// ── no GPU ────────────────────────────────────────────────────────────────

async function smallPhotoSet(fixtures: string, data: string, perClass = 12, tests = 4): Promise<void> {
  const source = path.join(fixtures, 'datasets', 'catsdogs-2k');
  await rm(data, { recursive: true, force: true });
  await mkdir(path.join(data, 'train'), { recursive: true });
  await mkdir(path.join(data, 'test1'), { recursive: true });
  for (let i = 0; i < perClass; i++) {
    for (const c of ['cat', 'dog']) await symlink(path.join(source, 'train', `${c}.${i}.jpg`), path.join(data, 'train', `${c}.${i}.jpg`));
  }
  for (let i = 1; i <= tests; i++) await symlink(path.join(source, 'test1', `${i}.jpg`), path.join(data, 'test1', `${i}.jpg`));
}

async function noGpu(fixtures: string, work: string): Promise<boolean> {
  const problems: string[] = [];
  console.log(`onnxruntime-node ${ortVersion()}: CUDA provider library ${describeProvider()}`);
  const data = path.join(work, 'data-small');
  await smallPhotoSet(fixtures, data);

  const auto = await runCatsdogs('device auto', await newProject(work, 'auto'), fixtures, [`data=${data}`, 'device=auto']);
  if (auto.code !== 0) problems.push(`device auto: the run failed (exit ${auto.code}):\n${tail(auto.stderr)}`);
  else {
    for (const stage of ['features', 'train']) {
      const line = auto.stderr.split('\n').find((l) => l.includes(`${stage}:`) && FALLBACK_MESSAGE.test(l));
      if (line) console.log(`device auto, ${stage}: said "${line.trim()}"`);
      else problems.push(`device auto: the ${stage} stage did not say it falls back to the CPU (expected ${FALLBACK_MESSAGE})`);
    }
    const stored = await entries(auto.dir);
    for (const stage of ['features', 'train']) {
      const device = stored.get(stage)?.value.device;
      if (device === 'cpu') console.log(`device auto, ${stage}: its record says it ran on device 'cpu'`);
      else problems.push(`device auto: the ${stage} record says device ${JSON.stringify(device)}, expected 'cpu'`);
    }
  }

  const cuda = await runCatsdogs('device cuda', await newProject(work, 'cuda'), fixtures, [`data=${data}`, 'device=cuda']);
  const refused = cuda.code === 1 && /CUDA/.test(cuda.stderr) && /npm rebuild onnxruntime-node/.test(cuda.stderr);
  if (refused) console.log(`device cuda: refused as documented (exit 1): "${cuda.stderr.split('\n').find((l) => /CUDA/.test(l))?.trim()}"`);
  else problems.push(`device cuda: expected exit 1 with the CUDA provider's install instructions, got exit ${cuda.code}:\n${tail(cuda.stderr)}`);

  for (const p of problems) console.log(`MISMATCH: ${p}`);
  return problems.length === 0;
}

// ── GPU ───────────────────────────────────────────────────────────────────

interface Backbone {
  label: string;
  file: string;
  /** Real weights: its predictions mean something, so labels and accuracy must agree too. */
  pretrained: boolean;
}

function parseBackbone(spec: string): Backbone {
  const [label, file, flag] = spec.split('=');
  if (!label || !file) throw new Error(`--backbone wants LABEL=FILE[=pretrained], not ${spec}`);
  return { label, file: path.resolve(file), pretrained: flag === 'pretrained' };
}

interface DeviceResult {
  job: Job;
  images: number;
  width: number;
  rows: number[];
  features: Float32Array;
  featuresMs: number;
  featuresDevice: unknown;
  trainMs: number;
  trainDevice: unknown;
  trainEngine: unknown;
  accuracy: number;
  labels: string[];
  gpu?: GpuSample;
}

interface GpuSample {
  peakMemoryMiB: number;
  peakUtilization: number;
}

/** Samples the GPU's memory use and utilisation while `body` runs (reported, not judged: a VM may hide them). */
async function sampleGpu<T>(body: () => Promise<T>): Promise<{ result: T; sample?: GpuSample }> {
  let peakMemoryMiB = -1;
  let peakUtilization = -1;
  let child: ReturnType<typeof spawn> | undefined;
  try {
    child = spawn('nvidia-smi', ['--query-gpu=memory.used,utilization.gpu', '--format=csv,noheader,nounits', '-lms', '500'], { stdio: ['ignore', 'pipe', 'ignore'] });
    child.on('error', () => undefined);
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (text: string) => {
      for (const line of text.split('\n')) {
        const [mem, util] = line.split(',').map((s) => Number(s.trim()));
        if (Number.isFinite(mem)) peakMemoryMiB = Math.max(peakMemoryMiB, mem!);
        if (Number.isFinite(util)) peakUtilization = Math.max(peakUtilization, util!);
      }
    });
  } catch {
    child = undefined;
  }
  try {
    const result = await body();
    return { result, sample: peakMemoryMiB >= 0 ? { peakMemoryMiB, peakUtilization } : undefined };
  } finally {
    child?.kill();
  }
}

async function runOn(backbone: Backbone, device: 'cpu' | 'cuda', fixtures: string, work: string, index: number): Promise<DeviceResult> {
  const data = path.join(fixtures, 'datasets', 'catsdogs-2k');
  const dir = await newProject(work, `job-${index}-${device}`);
  // engine onnx on both: the CPU runs the same training graph CUDA runs (auto may pick the TypeScript engine).
  const sets = [`data=${data}`, `backbone=${backbone.file}`, `device=${device}`, 'train.engine=onnx'];
  const { result: job, sample } = await (device === 'cuda'
    ? sampleGpu(() => runCatsdogs(`${backbone.label} on ${device}`, dir, fixtures, sets))
    : runCatsdogs(`${backbone.label} on ${device}`, dir, fixtures, sets).then((result) => ({ result, sample: undefined })));
  if (job.code !== 0) throw new Error(`${job.label}: the run failed (exit ${job.code}):\n${tail(job.stderr, 25)}`);
  const stored = await entries(dir);
  const features = stored.get('features')!;
  const train = stored.get('train')!;
  const matrix = await storedFile(dir, features, 'features.f32');
  const rowsFile = JSON.parse((await storedFile(dir, features, 'rows.json')).toString('utf8')) as { width: number; rows: number[] };
  const summary = JSON.parse(job.stdout) as { metrics: Record<string, Record<string, number>> };
  const csv = (await readFile(path.join(dir, 'out', 'catsdogs', 'submission.csv'), 'utf8')).trimEnd().split('\n');
  return {
    job,
    images: Number(features.value.images),
    width: rowsFile.width,
    rows: rowsFile.rows,
    features: new Float32Array(matrix.buffer, matrix.byteOffset, matrix.byteLength / 4),
    featuresMs: features.durationMs,
    featuresDevice: features.value.device,
    trainMs: train.durationMs,
    trainDevice: train.value.device,
    trainEngine: train.value.engine,
    accuracy: summary.metrics.evaluate!.accuracy!,
    labels: csv.slice(1),
    gpu: sample,
  };
}

/** Per image: |cpu - cuda| / |cpu| (L2). */
export function relativeDifferences(a: Float32Array, b: Float32Array, width: number): number[] {
  const out: number[] = [];
  for (let r = 0; r * width < a.length; r++) {
    let diff = 0;
    let norm = 0;
    for (let i = r * width; i < (r + 1) * width; i++) {
      diff += (a[i]! - b[i]!) ** 2;
      norm += a[i]! ** 2;
    }
    out.push(Math.sqrt(diff) / Math.max(Math.sqrt(norm), 1e-12));
  }
  return out;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

function compare(backbone: Backbone, cpu: DeviceResult, cuda: DeviceResult, second: 'cpu' | 'cuda'): string[] {
  const problems: string[] = [];
  const name = backbone.label;
  if (cpu.featuresDevice !== 'cpu' || cpu.trainDevice !== 'cpu') problems.push(`${name}: the CPU job's records say ${cpu.featuresDevice}/${cpu.trainDevice}`);
  if (cuda.featuresDevice !== second) problems.push(`${name}: the features stage of the ${second} job ran on ${JSON.stringify(cuda.featuresDevice)}, not '${second}'`);
  if (cuda.trainDevice !== second || cuda.trainEngine !== 'onnx') problems.push(`${name}: the training of the ${second} job ran on ${JSON.stringify(cuda.trainDevice)} with engine ${JSON.stringify(cuda.trainEngine)}`);
  if (cpu.width !== cuda.width || cpu.rows.join() !== cuda.rows.join()) {
    problems.push(`${name}: CPU and CUDA feature tables differ in shape (${cpu.rows.length}×${cpu.width} vs ${cuda.rows.length}×${cuda.width})`);
  } else {
    const rel = relativeDifferences(cpu.features, cuda.features, cpu.width);
    const worst = Math.max(...rel);
    const bad = rel.filter((x) => !(x <= FEATURE_TOLERANCE)).length;
    console.log(`  ${name}: features, relative L2 difference per image: median ${median(rel).toExponential(2)}, max ${worst.toExponential(2)} (tolerance ${FEATURE_TOLERANCE})`);
    if (bad) problems.push(`${name}: ${bad} of ${rel.length} images have CUDA features further than ${FEATURE_TOLERANCE} (relative L2) from the CPU's; worst ${worst.toExponential(2)}`);
  }
  const differing = cpu.labels.filter((l, i) => l !== cuda.labels[i]).length + Math.abs(cpu.labels.length - cuda.labels.length);
  const points = 100 * Math.abs(cpu.accuracy - cuda.accuracy);
  console.log(
    `  ${name}: validation accuracy CPU ${(100 * cpu.accuracy).toFixed(2)}%, CUDA ${(100 * cuda.accuracy).toFixed(2)}% (${points.toFixed(2)} points apart); ` +
      `submission.csv: ${differing} of ${cpu.labels.length} labels differ`,
  );
  if (backbone.pretrained) {
    if (differing) problems.push(`${name}: ${differing} submission labels differ between CPU and CUDA`);
    if (!(points <= ACCURACY_POINTS)) problems.push(`${name}: validation accuracy differs by ${points.toFixed(2)} points (allowed ${ACCURACY_POINTS})`);
  }
  return problems;
}

async function gpu(fixtures: string, work: string, backbones: Backbone[], second: 'cpu' | 'cuda' = 'cuda'): Promise<boolean> {
  console.log(`onnxruntime-node ${ortVersion()}: CUDA provider library ${describeProvider()}`);
  if (second === 'cpu') console.log('SELF-TEST: the second job of each pair runs on the CPU too; nothing here is a GPU result');
  const problems: string[] = [];
  // Fail fast, with onnxruntime's own error, before minutes of pipelines.
  if (second === 'cuda') try {
    const model = buildModel({
      name: 'cuda-smoke',
      opset: 13,
      inputs: [{ name: 'x', type: 'float32', dims: [2, 3] }],
      outputs: [{ name: 'y', type: 'float32', dims: [2, 2] }],
      initializers: [{ name: 'W', type: 'float32', dims: [3, 2], data: Float32Array.of(1, 2, 3, 4, 5, 6) }],
      nodes: [{ op: 'MatMul', inputs: ['x', 'W'], outputs: ['y'] }],
    });
    const session = await createSession(model, { device: 'cuda', quiet: true }, 'the CUDA check model');
    const y = (await session.run({ x: new ort.Tensor('float32', Float32Array.of(1, 0, 0, 0, 1, 1), [2, 3]) })).y!.data as Float32Array;
    await session.release();
    if ([...y].join() !== '1,2,8,10') throw new Error(`a 2×3 by 3×2 MatMul on CUDA gave ${[...y].join()}, expected 1,2,8,10`);
    console.log('CUDA session: created, and a MatMul on it gave the right numbers');
  } catch (e) {
    const cause = (e as Error).cause ? ` (onnxruntime: ${String((e as Error).cause)})` : '';
    console.log(`MISMATCH: the CUDA execution provider does not work: ${(e as Error).message}${cause}`);
    return false;
  }

  const rows: string[] = [];
  for (const [i, backbone] of backbones.entries()) {
    console.log(`${backbone.label} (${backbone.file}):`);
    try {
      const cpu = await runOn(backbone, 'cpu', fixtures, work, i);
      const cuda = await runOn(backbone, second, fixtures, work, i + 100);
      problems.push(...compare(backbone, cpu, cuda, second));
      const ips = (r: DeviceResult) => r.images / (r.featuresMs / 1000);
      rows.push(
        `| ${backbone.label} | ${cpu.images} | ${ips(cpu).toFixed(0)} | ${ips(cuda).toFixed(0)} | ${(ips(cuda) / ips(cpu)).toFixed(2)}× | ` +
          `${(cpu.trainMs / 1000).toFixed(2)} | ${(cuda.trainMs / 1000).toFixed(2)} | ${(cpu.job.wallMs / 1000).toFixed(1)} / ${(cuda.job.wallMs / 1000).toFixed(1)} | ` +
          `${cuda.gpu ? `${cuda.gpu.peakMemoryMiB} MiB, ${cuda.gpu.peakUtilization}%` : 'not read'} |`,
      );
    } catch (e) {
      problems.push((e as Error).message);
    }
  }
  console.log('');
  console.log('| backbone | images | features CPU img/s | features CUDA img/s | CUDA/CPU | train CPU s | train CUDA s | job wall s CPU / CUDA | GPU peak memory, utilisation |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) console.log(r);
  console.log('(features img/s: images over the features stage\'s own time, session start and decoding included; train: the head.train stage, engine onnx, 10 epochs)');
  for (const p of problems) console.log(`MISMATCH: ${p}`);
  return problems.length === 0 && rows.length === backbones.length;
}

function ortVersion(): string {
  try {
    return (createRequire(import.meta.url)('onnxruntime-node/package.json') as { version: string }).version;
  } catch {
    return '(version unknown)';
  }
}

function describeProvider(): string {
  const installed = cudaProviderInstalled();
  return installed ? 'installed' : installed === false ? 'not installed' : 'not found (unexpected package layout)';
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { fixtures: { type: 'string' }, work: { type: 'string' }, backbone: { type: 'string', multiple: true } },
  });
  const mode = positionals[0];
  // Absolute: the pipelines run in per-job project folders, where relative paths would start.
  const fixtures = values.fixtures && path.resolve(values.fixtures);
  const work = values.work && path.resolve(values.work);
  if ((mode !== 'gpu' && mode !== 'no-gpu' && mode !== 'cpu-self-test') || !fixtures || !work) {
    console.error('usage: check.js gpu|no-gpu|cpu-self-test --fixtures DIR --work DIR [--backbone LABEL=FILE[=pretrained]]...');
    return 64;
  }
  await mkdir(work, { recursive: true });
  if (mode === 'no-gpu') return (await noGpu(fixtures, work)) ? 0 : 1;
  const backbones = (values.backbone ?? []).map(parseBackbone);
  if (!backbones.length) {
    console.error('gpu: give at least one --backbone');
    return 64;
  }
  return (await gpu(fixtures, work, backbones, mode === 'cpu-self-test' ? 'cpu' : 'cuda')) ? 0 : 1;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().then(
    (code) => process.exit(code),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
