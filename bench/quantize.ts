// `node dist/bench/quantize.js MODEL.onnx`: what static int8 quantization
// (src/onnx/quantize.ts) buys on a float backbone. The model is cut before its
// classifier, quantized on a seeded sample of catsdogs training photos, and
// then, in this one process and interleaved so that outside load hits both
// alike: inference alone on ready tensors, fp32 vs int8, with onnxruntime's
// spin-waiting on and off; the cosine similarity of int8 and fp32 features on
// other photos; and what onnxruntime's CPU optimizer made of the int8 graph.
//
//   node dist/bench/quantize.js /tmp/tlpipe-bench-models/resnet50-torch-seed0.onnx [--calibration 64] [--check 64] [--reps 5] [--batch 8]
//
// Needs the shared fixtures (TLPIPE_FIXTURES). Opt-in, never in CI; see
// docs/performance.md. The last line is `int8 speed-up: X× CPU per image (best settings of each)`.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { loadImageTensorInto } from '../src/images/preprocess.js';
import { createRng, shuffleInPlace } from '../src/images/random.js';
import { resolveTransform } from '../src/images/transform-spec.js';
import { cutAtFeatures } from '../src/onnx/cut.js';
import { parseModel } from '../src/onnx/model.js';
import { type CalibrationBatch, quantizeModel } from '../src/onnx/quantize.js';
import { fixture, haveFixtures } from '../test/support/fixtures.js';
import { spinningAlone } from '../src/features/threads.js';
import { PhaseTimer } from '../src/phase-timer.js';

const USAGE = 'usage: node dist/bench/quantize.js MODEL.onnx [--calibration 64] [--check 64] [--reps 5] [--batch 8]';

function parseArgs(argv: string[]) {
  const args = { model: '', calibration: 64, check: 64, reps: 5, batch: 8 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const int = () => {
      const n = Number(argv[++i]);
      if (!Number.isInteger(n) || n <= 0) throw new Error(`${a} needs a positive integer\n${USAGE}`);
      return n;
    };
    if (a === '--calibration') args.calibration = int();
    else if (a === '--check') args.check = int();
    else if (a === '--reps') args.reps = int();
    else if (a === '--batch') args.batch = int();
    else if (!a.startsWith('--') && !args.model) args.model = a;
    else throw new Error(`unknown argument ${a}\n${USAGE}`);
  }
  if (!args.model) throw new Error(USAGE);
  return args;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const loadAverage = () => os.loadavg()[0]!.toFixed(1);

async function photos(count: number, skip: number, batch: number): Promise<CalibrationBatch[]> {
  const dir = fixture('datasets', 'catsdogs-2k', 'train');
  const { readdir } = await import('node:fs/promises');
  const names = shuffleInPlace((await readdir(dir)).filter((n) => n.endsWith('.jpg')).sort(), createRng(0)).slice(skip, skip + count);
  const spec = resolveTransform({ resize: 256, centerCrop: 224 });
  const per = 3 * 224 * 224;
  const out: CalibrationBatch[] = [];
  for (let i = 0; i < names.length; i += batch) {
    const part = names.slice(i, i + batch);
    const data = new Float32Array(part.length * per);
    for (let k = 0; k < part.length; k++) await loadImageTensorInto(path.join(dir, part[k]!), spec, data, k * per);
    out.push({ data, dims: [part.length, 3, 224, 224] });
  }
  return out;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (!haveFixtures) throw new Error('the benchmark needs the shared fixtures (set TLPIPE_FIXTURES)');
  const cores = os.availableParallelism();
  console.log(`machine: ${cores} cores (${os.cpus()[0]?.model ?? '?'}), load average ${loadAverage()} at the start; onnxruntime-node ${ort.env.versions.common}`);
  const source = await readFile(args.model);
  const cut = await cutAtFeatures(source, { source: args.model });
  console.log(`model: ${args.model} (${(source.length / 1e6).toFixed(1)} MB), cut after ${cut.cutAfter}, ${cut.featureWidth} features`);

  const calibration = await photos(args.calibration, 0, args.batch);
  const check = await photos(args.check, args.calibration, args.batch);
  const sessionOptions = { intraOpNumThreads: cores, interOpNumThreads: 1 };
  let started = performance.now();
  const timer = new PhaseTimer();
  const q = await quantizeModel(cut.bytes, { source: args.model, calibration, check, intraOpThreads: cores, spinning: spinningAlone(), minCosine: 0, timer });
  console.log(
    `quantized in ${((performance.now() - started) / 1000).toFixed(1)} s (calibration on ${args.calibration} photos): ` +
      `${Object.entries(q.quantizedNodes).map(([op, n]) => `${n} ${op}`).join(', ')}; ${q.foldedBatchNorms} BatchNormalization and ${q.foldedActivations} activations folded; ` +
      `${q.perChannel ? 'per-channel' : 'per-tensor'} weights, opset ${q.opset}; ${(cut.bytes.length / 1e6).toFixed(1)} → ${(q.bytes.length / 1e6).toFixed(1)} MB`,
  );
  console.log(`phases: ${timer.summary()}`);
  console.log(`features, int8 vs fp32, on ${q.agreement.images} other photos: cosine similarity mean ${q.agreement.mean.toFixed(5)}, min ${q.agreement.min.toFixed(5)}`);

  const dir = await mkdtemp(path.join(os.tmpdir(), 'tlpipe-bench-quantize-'));
  try {
    const optimized = path.join(dir, 'int8-optimized.onnx');
    const probe = await ort.InferenceSession.create(q.bytes, { ...sessionOptions, graphOptimizationLevel: 'all', optimizedModelFilePath: optimized, logSeverityLevel: 3 });
    await probe.release();
    const ops: Record<string, number> = {};
    for (const n of parseModel(await readFile(optimized)).graph.nodes) ops[n.opType] = (ops[n.opType] ?? 0) + 1;
    console.log(`onnxruntime runs the int8 graph as: ${Object.entries(ops).map(([op, n]) => `${n} ${op}`).join(', ')}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }

  // Inference alone, every setting once per repetition, in turn.
  const settings = [
    { model: 'fp32', bytes: cut.bytes, spinning: true },
    { model: 'fp32', bytes: cut.bytes, spinning: false },
    { model: 'int8', bytes: q.bytes, spinning: true },
    { model: 'int8', bytes: q.bytes, spinning: false },
  ];
  const sessions = await Promise.all(
    settings.map((s) =>
      ort.InferenceSession.create(s.bytes, {
        ...sessionOptions,
        graphOptimizationLevel: 'all',
        extra: { session: { intra_op: { allow_spinning: s.spinning ? '1' : '0' } } },
      }),
    ),
  );
  const input = check[0]!;
  const feeds = { [sessions[0]!.inputNames[0]!]: new ort.Tensor('float32', input.data, input.dims) };
  for (const s of sessions) await s.run(feeds); // warm-up
  const cpu: number[][] = settings.map(() => []);
  const wall: number[][] = settings.map(() => []);
  started = performance.now();
  for (let r = 0; r < args.reps; r++) {
    for (let i = 0; i < sessions.length; i++) {
      const c0 = process.cpuUsage();
      const w0 = performance.now();
      await sessions[i]!.run(feeds);
      const c = process.cpuUsage(c0);
      wall[i]!.push((performance.now() - w0) / input.dims[0]!);
      cpu[i]!.push((c.user + c.system) / 1000 / input.dims[0]!);
    }
  }
  for (const s of sessions) await s.release();
  console.log(`\ninference alone, batch ${input.dims[0]}, ${cores} intra-op threads, medians of ${args.reps} interleaved repetitions (load average ${loadAverage()} at the end):`);
  console.log('| model | spinning | wall ms/image | CPU ms/image |');
  console.log('|---|---|---:|---:|');
  settings.forEach((s, i) => console.log(`| ${s.model} | ${s.spinning ? 'on' : 'off'} | ${median(wall[i]!).toFixed(1)} | ${median(cpu[i]!).toFixed(1)} |`));
  const best = (model: string, of: number[][]) => Math.min(...settings.flatMap((s, i) => (s.model === model ? [median(of[i]!)] : [])));
  console.log(
    `\nint8 speed-up: ${(best('fp32', cpu) / best('int8', cpu)).toFixed(2)}× CPU per image, ${(best('fp32', wall) / best('int8', wall)).toFixed(2)}× wall per image (best settings of each)`,
  );
}

main().catch((e) => {
  console.error((e as Error).message);
  process.exit(1);
});
