// backbone.quantize in a pipeline (pipelines/catsdogs-int8.yaml), run as a
// user runs it, on photos and a float classifier generated here: the int8
// model feeds the features and the exported classifier, it is cached like any
// stage, and a backbone it cannot quantize fails the stage with the reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { parseModel } from '../src/onnx/model.js';
import { quantizeModel } from '../src/onnx/quantize.js';
import { tlpipe } from './support/cli.js';
import { repoRoot } from './support/fixtures.js';
import { floatClassifier } from './support/float-classifier.js';
import { tempDir } from './support/tmp.js';

/** Kaggle layout: reddish cats and bluish dogs with noise, 96×80 JPEGs. */
async function photos(dir: string, perClass: number, tests: number): Promise<void> {
  let seed = 99;
  const noise = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 90;
  const jpeg = async (file: string, tint: [number, number, number]) => {
    const [w, h] = [96, 80];
    const pixels = Buffer.alloc(w * h * 3);
    for (let i = 0; i < w * h; i++) for (let c = 0; c < 3; c++) pixels[3 * i + c] = Math.min(255, tint[c]! + noise());
    await sharp(pixels, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 90 }).toFile(file);
  };
  await mkdir(path.join(dir, 'train'), { recursive: true });
  await mkdir(path.join(dir, 'test1'), { recursive: true });
  for (let i = 0; i < perClass; i++) {
    await jpeg(path.join(dir, 'train', `cat.${i}.jpg`), [150, 40, 30]);
    await jpeg(path.join(dir, 'train', `dog.${i}.jpg`), [30, 60, 150]);
  }
  for (let i = 1; i <= tests; i++) await jpeg(path.join(dir, 'test1', `${i}.jpg`), i % 2 ? [150, 40, 30] : [30, 60, 150]);
}

async function project(model: Uint8Array): Promise<string> {
  const dir = await tempDir({ 'package.json': '{}\n', 'models/backbone.onnx': model });
  await mkdir(path.join(dir, 'pipelines'));
  await copyFile(path.join(repoRoot, 'pipelines', 'catsdogs-int8.yaml'), path.join(dir, 'pipelines', 'catsdogs-int8.yaml'));
  await photos(path.join(dir, 'data'), 12, 4);
  return dir;
}

const args = (...extra: string[]) => [
  'run', 'pipelines/catsdogs-int8.yaml', '--json', '--cache-dir', '.cache',
  '--set', 'data=data', '--set', 'backbone=models/backbone.onnx', '--set', 'epochs=3',
  '--set', 'quantize.calibrationImages=8', '--set', 'quantize.checkImages=4', ...extra,
];

interface Summary {
  stages: { name: string; status: string }[];
  metrics: Record<string, Record<string, number>>;
}

test('a float backbone is quantized once, feeds the features and the exported model, and is reused on an lr rerun', { timeout: 240_000 }, async () => {
  const dir = await project(floatClassifier());
  const first = await tlpipe(args(), { cwd: dir });
  assert.equal(first.code, 0, first.stderr.slice(-2000));
  const summary = JSON.parse(first.stdout) as Summary;
  assert.ok(summary.stages.every((s) => s.status === 'ran'), JSON.stringify(summary.stages));
  assert.ok(summary.metrics.quantize!.cosineMean! >= 0.98, JSON.stringify(summary.metrics.quantize));
  assert.match(first.stderr, /quantize: int8: 2 Conv, 1 MaxPool, 1 Add; per-channel weights; [\d.]+ → [\d.]+ kB; calibrated on 8 images; features agree with float at cosine (0\.9\d+|1\.0000) \(min (0\.9\d+|1\.0000)\) on 4 others/);
  // Where its time went, phase by phase, CPU beside wall.
  const phases = /quantize: time: (.*)/.exec(first.stderr)?.[1] ?? '';
  assert.deepEqual(
    phases.split(', ').map((p) => /^(\w+) [\d.]+ s \(CPU [\d.]+ s\)$/.exec(p)?.[1]),
    ['decode', 'read', 'parse', 'plan', 'calibration', 'rewrite', 'encode', 'check'],
    phases,
  );

  // The exported classifier carries the int8 backbone and runs.
  const exported = await readFile(path.join(dir, 'out', 'catsdogs-int8', 'model.onnx'));
  const m = parseModel(exported);
  assert.ok(m.graph.nodes.some((n) => n.opType === 'QuantizeLinear'));
  assert.ok(m.graph.initializers.some((t) => t.elemType === 'int8'));
  const session = await ort.InferenceSession.create(exported);
  const out = await session.run({ input: new ort.Tensor('float32', new Float32Array(2 * 3 * 224 * 224).fill(0.1), [2, 3, 224, 224]) });
  assert.deepEqual(out.probabilities!.dims, [2, 2]);
  await session.release();

  const rerun = await tlpipe(args('--set', 'lr=0.0003'), { cwd: dir });
  assert.equal(rerun.code, 0, rerun.stderr.slice(-2000));
  const statuses = Object.fromEntries((JSON.parse(rerun.stdout) as Summary).stages.map((s) => [s.name, s.status]));
  assert.equal(statuses.quantize, 'cached');
  assert.equal(statuses.features, 'cached');
  assert.equal(statuses.train, 'ran');
});

test('a backbone that is already int8 fails the quantize stage with the reason, and nothing after it runs', { timeout: 120_000 }, async () => {
  const calibration = [{ data: new Float32Array(2 * 3 * 224 * 224).map((_, i) => (i % 97) / 97 - 0.5), dims: [2, 3, 224, 224] }];
  const int8 = await quantizeModel(floatClassifier(), { calibration });
  const dir = await project(int8.bytes);
  const r = await tlpipe(args(), { cwd: dir });
  assert.equal(r.code, 1, r.stderr.slice(-2000));
  assert.match(r.stderr, /cannot quantize the freeze model: it is already quantized \(\d+ nodes such as QuantizeLinear "[^"]+"\)\. Use it as it is, without the quantize stage\./);
  const summary = JSON.parse(r.stdout) as Summary;
  const statuses = Object.fromEntries(summary.stages.map((s) => [s.name, s.status]));
  assert.equal(statuses.quantize, 'failed');
  assert.notEqual(statuses.features, 'ran');
});
