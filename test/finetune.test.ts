// Fine-tuning end to end on real photos with the fixtures' int8 MobileNetV2
// (pipelines/catsdogs-finetune.yaml): activations at the cut computed once and
// stored as 8-bit codes, reused by a new learning rate; the fine-tuned model
// never below the probe; `tlpipe predict` with the exported model gives what
// the finetune stage measured on the validation images.
import assert from 'node:assert/strict';
import { copyFile, mkdir, readFile, symlink } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { tlpipe } from './support/cli.js';
import { fixture, needsFixtures, repoRoot } from './support/fixtures.js';
import { tempDir } from './support/tmp.js';

const env = () => ({ TLPIPE_MODELS: fixture('models') });

interface Summary {
  stages: { name: string; status: string }[];
  metrics: Record<string, Record<string, number | boolean | null>>;
  outputs: string[];
}

/** ImageFolder layout: train/<class>/ and val/<class>/, from the fixtures' Kaggle photos. */
async function project(trainPerClass: number, valPerClass: number): Promise<string> {
  const dir = await tempDir({ 'package.json': '{}' });
  await mkdir(path.join(dir, 'pipelines'));
  await copyFile(path.join(repoRoot, 'pipelines', 'catsdogs-finetune.yaml'), path.join(dir, 'pipelines', 'catsdogs-finetune.yaml'));
  for (const c of ['cat', 'dog']) {
    for (const [split, from, count] of [['train', 0, trainPerClass], ['val', 500, valPerClass]] as const) {
      await mkdir(path.join(dir, 'data', split, c), { recursive: true });
      // Dogs are numbered from 10000, so a prediction's id says its true class.
      for (let i = from; i < from + count; i++) await symlink(fixture('datasets', 'catsdogs-2k', 'train', `${c}.${i}.jpg`), path.join(dir, 'data', split, c, `${c === 'dog' ? 10000 + i : i}.jpg`));
    }
  }
  return dir;
}

async function run(dir: string, ...args: string[]): Promise<Summary> {
  const r = await tlpipe(['run', 'pipelines/catsdogs-finetune.yaml', '--set', 'data=data', '--json', ...args], { cwd: dir, env: env() });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Summary;
}

const statuses = (s: Summary) => Object.fromEntries(s.stages.map((x) => [x.name, x.status]));

test('fine-tuning the int8 MobileNetV2 on real photos: activations once, a new learning rate reuses them, predict gives what the stage measured', { skip: needsFixtures }, async () => {
  const dir = await project(6, 30);
  const first = await run(dir, '--set', 'epochs=2');
  const activations = first.metrics.activations!;
  // 72 images × 160·7·7 activations, as uint8 codes of the cut's quantization.
  assert.equal(activations.bytes, 72 * 160 * 7 * 7);
  const finetune = first.metrics.finetune!;
  const valAccuracy = finetune.valAccuracy as number;
  assert.ok(valAccuracy >= (finetune.probeValAccuracy as number), 'never below the probe it started from');
  assert.ok(valAccuracy > 0.8, `val accuracy ${valAccuracy}`);

  const record = JSON.parse((await tlpipe(['show', 'last'], { cwd: dir })).stdout);
  const stage = (name: string) => record.stages.find((s: { name: string }) => s.name === name);
  assert.equal(stage('activations').value.stored, 'uint8');
  assert.equal(stage('split').value.cutTensor, '597_quantized', 'the last 3 blocks train by default');
  const history = stage('finetune').value.history as { epoch: number }[];
  assert.deepEqual(history.map((e) => e.epoch), [0, 1, 2], 'epoch 0 is the warm start');

  // The exported model: predict on the validation folder, count what it gets right.
  const predicted = await tlpipe(['predict', 'out/catsdogs-finetune/model.onnx', path.join(dir, 'data', 'val'), '--out', 'val.csv'], { cwd: dir, env: env() });
  assert.equal(predicted.code, 0, predicted.stderr);
  const rows = (await readFile(path.join(dir, 'val.csv'), 'utf8')).trimEnd().split('\n').slice(1);
  assert.equal(rows.length, 60);
  // id,label (0 cat, 1 dog),...
  const right = rows.filter((line) => {
    const [id, label] = line.split(',').map(Number);
    return (id! >= 10000 ? 1 : 0) === label;
  }).length;
  assert.equal(right, Math.round(valAccuracy * 60), `predict: ${right}/60 right; the finetune stage measured ${valAccuracy}`);

  // A new block learning rate: the activations are reused, only fine-tuning and the export run.
  const second = await run(dir, '--set', 'epochs=2', '--set', 'blockLr=3e-5');
  assert.deepEqual(
    Object.fromEntries(Object.entries(statuses(second)).filter(([name]) => ['features', 'train', 'split', 'activations', 'finetune', 'model'].includes(name))),
    { features: 'cached', train: 'cached', split: 'cached', activations: 'cached', finetune: 'ran', model: 'ran' },
  );
});
