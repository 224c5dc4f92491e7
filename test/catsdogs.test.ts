// The catsdogs job end to end on real data: the fixtures' pretrained
// MobileNetV2-int8 and 3,003 Kaggle photos.
import assert from 'node:assert/strict';
import { copyFile, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { tlpipe } from './support/cli.js';
import { fixture, needsFixtures, repoRoot } from './support/fixtures.js';
import { tempDir } from './support/tmp.js';

const env = () => ({ TLPIPE_MODELS: fixture('models') });

async function projectWith(pipeline: string): Promise<string> {
  const dir = await tempDir({ 'package.json': '{}' });
  await mkdir(path.join(dir, 'pipelines'));
  await copyFile(path.join(repoRoot, 'pipelines', pipeline), path.join(dir, 'pipelines', pipeline));
  return dir;
}

interface Summary {
  stages: { name: string; status: string }[];
  metrics: Record<string, Record<string, number>>;
  outputs: string[];
}

async function run(dir: string, ...args: string[]): Promise<Summary> {
  const r = await tlpipe(['run', 'pipelines/catsdogs.yaml', '--json', ...args], { cwd: dir, env: env() });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Summary;
}

const statuses = (s: Summary) => Object.fromEntries(s.stages.map((x) => [x.name, x.status]));

test('catsdogs on 3,003 real photos: accuracy, the submission, a cached rerun, a new learning rate, the merged model', { skip: needsFixtures }, async () => {
  const dir = await projectWith('catsdogs.yaml');
  const data = `--set=data=${fixture('datasets', 'catsdogs-2k')}`;

  const first = await run(dir, data);
  assert.ok(first.stages.every((s) => s.status === 'ran'), JSON.stringify(first.stages));
  const accuracy = first.metrics.evaluate!.accuracy!;
  // The default recipe (lbfgs, weightDecay auto, standardised features); bench/accuracy.ts measures it against tuning.
  assert.ok(accuracy >= 0.98, `validation accuracy ${accuracy}`);
  assert.equal(first.metrics.train!.valAccuracy, accuracy);

  const csv = (await readFile(path.join(dir, 'out/catsdogs/submission.csv'), 'utf8')).trimEnd().split('\n');
  assert.equal(csv[0], 'id,label');
  assert.equal(csv.length, 1002);
  assert.deepEqual(
    csv.slice(1).map((l) => Number(l.split(',')[0])),
    Array.from({ length: 1001 }, (_, i) => i + 1),
  );
  assert.ok(csv.slice(1).every((l) => /^\d+,[01]$/.test(l)));
  // Byte-identical files in test1 (224 = 267, 750 = 789) get the same prediction.
  const label = (id: number) => csv[id]!.split(',')[1];
  assert.equal(label(224), label(267));
  assert.equal(label(750), label(789));

  const second = await run(dir, data);
  assert.ok(second.stages.every((s) => s.status === 'cached'), JSON.stringify(second.stages));

  // The classic recipe is one --set away, and retrains the head without one backbone feature computed again.
  const third = await run(dir, data, '--set', 'optimizer=adam');
  assert.ok(third.metrics.evaluate!.accuracy! >= 0.97, `classic recipe: validation accuracy ${third.metrics.evaluate!.accuracy}`);
  assert.deepEqual(statuses(third), {
    dataset: 'cached',
    backbone: 'cached',
    transform: 'cached',
    freeze: 'cached',
    features: 'cached',
    head: 'cached',
    train: 'ran',
    evaluate: 'ran',
    predictions: 'ran',
    model: 'ran',
  });

  // The merged model predicts what the pipeline predicted.
  const predicted = await tlpipe(['predict', 'out/catsdogs/model.onnx', fixture('datasets', 'catsdogs-2k', 'test1'), '--out', 'predict.csv'], {
    cwd: dir,
    env: env(),
  });
  assert.equal(predicted.code, 0, predicted.stderr);
  const rows = (await readFile(path.join(dir, 'predict.csv'), 'utf8')).trimEnd().split('\n');
  assert.equal(rows.length, 1002);
  const mine = rows.slice(1).map((l) => l.split(',').slice(0, 2).join(','));
  const pipelineCsv = (await readFile(path.join(dir, 'out/catsdogs/submission.csv'), 'utf8')).trimEnd().split('\n').slice(1);
  assert.deepEqual(mine, pipelineCsv);
});

test('the exported model predicts what evaluation measured (standardisation folded into the head)', { skip: needsFixtures }, async () => {
  const dir = await projectWith('catsdogs.yaml');
  await run(dir, `--set=data=${fixture('datasets', 'catsdogs-2k')}`);
  const record = JSON.parse((await tlpipe(['show', 'last'], { cwd: dir })).stdout);
  const evaluation = record.stages.find((s: { name: string }) => s.name === 'evaluate');
  const train = record.stages.find((s: { name: string }) => s.name === 'train');
  assert.equal(train.value.optimizer, 'lbfgs');
  assert.equal(train.value.standardized, true);
  // The head is the L2 path's (at the applied strength) or the early-stopped candidate's (no penalty).
  const search = train.value.regularization;
  assert.equal(train.value.weightDecay, search.family === 'early stopping' ? 0 : search.applied);
  const mistakes = evaluation.value.misclassified as { path: string; predictedLabel: string; confidence: number }[];
  assert.equal(mistakes.length, evaluation.metrics.count - Math.round(evaluation.metrics.accuracy * evaluation.metrics.count));
  const predicted = await tlpipe(['predict', 'out/catsdogs/model.onnx', fixture('datasets', 'catsdogs-2k', 'train')], { cwd: dir, env: env() });
  assert.equal(predicted.code, 0, predicted.stderr);
  const byName = new Map(
    predicted.stdout.trimEnd().split('\n').map((l) => {
      const [file, label, confidence] = l.split('\t');
      return [path.basename(file!), { label: label!, confidence: Number(confidence!.replace('%', '')) / 100 }];
    }),
  );
  assert.equal(byName.size, 2002);
  for (const m of mistakes) {
    const p = byName.get(path.basename(m.path))!;
    assert.equal(p.label, m.predictedLabel, m.path);
    assert.ok(Math.abs(p.confidence - m.confidence) < 0.0006, `${m.path}: predict ${p.confidence}, evaluation ${m.confidence}`);
  }
});

test('a corrupt JPEG and a text file named .jpg are reported and skipped, not fatal', { skip: needsFixtures }, async () => {
  const dir = await projectWith('catsdogs.yaml');
  const data = path.join(dir, 'data');
  await mkdir(path.join(data, 'train'), { recursive: true });
  await mkdir(path.join(data, 'test1'), { recursive: true });
  for (let i = 0; i < 30; i++) {
    for (const c of ['cat', 'dog']) await symlink(fixture('datasets', 'catsdogs-2k', 'train', `${c}.${i}.jpg`), path.join(data, 'train', `${c}.${i}.jpg`));
  }
  for (let i = 1; i <= 5; i++) await symlink(fixture('datasets', 'catsdogs-2k', 'test1', `${i}.jpg`), path.join(data, 'test1', `${i}.jpg`));
  await copyFile(fixture('images', 'truncated.jpg'), path.join(data, 'train', 'cat.9999.jpg'));
  await writeFile(path.join(data, 'train', 'dog.9998.jpg'), 'this is not a picture\n');

  const r = await tlpipe(['run', 'pipelines/catsdogs.yaml', '--set', 'data=data'], { cwd: dir, env: env() });
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.match(r.stderr, /dataset warning: 2 unreadable image\(s\) skipped:/);
  assert.match(r.stderr, /dataset warning: {3}.*train\/cat\.9999\.jpg: .*trunc/i);
  assert.match(r.stderr, /dataset warning: {3}.*train\/dog\.9998\.jpg: /);
  assert.match(r.stdout, /^dataset: images 65, skipped 2$/m);
  const csv = (await readFile(path.join(dir, 'out/catsdogs/submission.csv'), 'utf8')).trimEnd().split('\n');
  assert.deepEqual(
    csv.slice(1).map((l) => l.split(',')[0]),
    ['1', '2', '3', '4', '5'],
  );
  const record = JSON.parse((await tlpipe(['show', 'last'], { cwd: dir })).stdout);
  const dataset = record.stages.find((s: { name: string }) => s.name === 'dataset');
  assert.deepEqual(
    dataset.value.skipped.map((s: { path: string }) => path.basename(s.path)),
    ['cat.9999.jpg', 'dog.9998.jpg'],
  );
});

test('the class-folder layout (pipelines/flowers.yaml) runs end to end, with augmented feature copies', { skip: needsFixtures }, async () => {
  const dir = await projectWith('flowers.yaml');
  const data = path.join(dir, 'data');
  for (const c of ['cat', 'dog']) {
    await mkdir(path.join(data, 'train', c), { recursive: true });
    for (let i = 0; i < 40; i++) await symlink(fixture('datasets', 'catsdogs-2k', 'train', `${c}.${i}.jpg`), path.join(data, 'train', c, `${i}.jpg`));
  }
  await mkdir(path.join(data, 'test'), { recursive: true });
  for (let i = 1; i <= 3; i++) await symlink(fixture('datasets', 'catsdogs-2k', 'test1', `${i}.jpg`), path.join(data, 'test', `${i}.jpg`));
  const augment = ['--set', 'transform.augment={horizontalFlip: 0.5}', '--set', 'features.augmentedCopies=2'];
  const r = await tlpipe(['run', 'pipelines/flowers.yaml', '--set', 'data=data', ...augment, '--json'], { cwd: dir, env: env() });
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout) as Summary;
  assert.equal(s.metrics.dataset!.images, 83);
  assert.equal(s.metrics.evaluate!.count, 16);
  // 83 plain views and two augmented views of each of the 64 training images.
  assert.equal(s.metrics.features!.computed, 83 + 128);
  assert.deepEqual(s.outputs.sort(), ['out/flowers/model.onnx', 'out/flowers/submission.csv']);
  const record = JSON.parse((await tlpipe(['show', 'last'], { cwd: dir })).stdout);
  assert.equal(record.stages.find((x: { name: string }) => x.name === 'features').value.augmented, 128);
  assert.match(r.stderr, /train: 192 training and 16 validation feature vectors/);
});
