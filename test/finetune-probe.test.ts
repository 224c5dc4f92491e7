// Fine-tuning never ends below the linear probe it starts from: when every
// trained epoch scores worse (here a learning rate far too large, so training
// diverges), backbone.finetune keeps its start: epoch 0 (the trained head on
// the dequantized float32 top) when that scores at least as well as the probe,
// else the probe itself (the frozen int8 backbone and the head); either way
// the exported model predicts what the stage reports. Real photos, the
// fixtures' int8 MobileNetV2.
import assert from 'node:assert/strict';
import { copyFile, mkdir, readFile, symlink } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { tlpipe } from './support/cli.js';
import { fixture, needsFixtures, repoRoot } from './support/fixtures.js';
import { tempDir } from './support/tmp.js';

const env = () => ({ TLPIPE_MODELS: fixture('models') });
const VAL = 15;

test('an epoch below the probe is never kept: training that diverges ends at its start, and predict gives its accuracy', { skip: needsFixtures }, async () => {
  const dir = await tempDir({ 'package.json': '{}' });
  await mkdir(path.join(dir, 'pipelines'));
  await copyFile(path.join(repoRoot, 'pipelines', 'catsdogs-finetune.yaml'), path.join(dir, 'pipelines', 'catsdogs-finetune.yaml'));
  for (const c of ['cat', 'dog']) {
    for (const [split, from, count] of [['train', 0, 6], ['val', 500, VAL]] as const) {
      await mkdir(path.join(dir, 'data', split, c), { recursive: true });
      // Dogs are numbered from 10000, so a prediction's id says its true class.
      for (let i = from; i < from + count; i++) await symlink(fixture('datasets', 'catsdogs-2k', 'train', `${c}.${i}.jpg`), path.join(dir, 'data', split, c, `${c === 'dog' ? 10000 + i : i}.jpg`));
    }
  }
  const r = await tlpipe(['run', 'pipelines/catsdogs-finetune.yaml', '--set', 'data=data', '--set', 'epochs=2', '--set', 'lr=10', '--set', 'blockLr=10', '--set', 'blocks=1', '--json'], { cwd: dir, env: env() });
  assert.equal(r.code, 0, r.stderr);
  const m = (JSON.parse(r.stdout) as { metrics: Record<string, Record<string, number | boolean | null>> }).metrics.finetune!;
  const record = JSON.parse((await tlpipe(['show', 'last'], { cwd: dir })).stdout);
  const value = record.stages.find((s: { name: string }) => s.name === 'finetune').value as { history: { epoch: number; valAccuracy: number; valLoss: number }[]; probe: { accuracy: number; loss: number } };
  // The branch is exercised: every trained epoch is worse than the probe.
  const trained = value.history.filter((e) => e.epoch > 0);
  assert.ok(trained.length > 0);
  for (const e of trained) assert.ok(e.valAccuracy < value.probe.accuracy || (e.valAccuracy === value.probe.accuracy && e.valLoss > value.probe.loss), `epoch ${e.epoch} (${e.valAccuracy}, ${e.valLoss}) does not score below the probe`);
  const better = (a: { accuracy: number; loss: number }, b: { accuracy: number; loss: number }) => a.accuracy > b.accuracy || (a.accuracy === b.accuracy && a.loss < b.loss);
  const start = value.history.find((e) => e.epoch === 0)!;
  if (better({ accuracy: start.valAccuracy, loss: start.valLoss }, value.probe)) {
    // The float32 start beats the int8 probe: it is the result.
    assert.equal(m.keptProbe, false, r.stderr);
    assert.equal(m.bestEpoch, 0);
    assert.equal(m.valAccuracy, start.valAccuracy);
    assert.match(r.stderr, /best epoch 0: val accuracy/);
  } else {
    assert.equal(m.keptProbe, true, r.stderr);
    assert.equal(m.valAccuracy, m.probeValAccuracy);
    assert.match(r.stderr, /no epoch beat the linear probe .* the probe is kept/);
  }
  assert.ok((m.valAccuracy as number) >= (m.probeValAccuracy as number));

  // The exported model is what was kept: its predictions on the validation photos score what the stage reported.
  const predicted = await tlpipe(['predict', 'out/catsdogs-finetune/model.onnx', path.join(dir, 'data', 'val'), '--out', 'val.csv'], { cwd: dir, env: env() });
  assert.equal(predicted.code, 0, predicted.stderr);
  const rows = (await readFile(path.join(dir, 'val.csv'), 'utf8')).trimEnd().split('\n').slice(1);
  assert.equal(rows.length, 2 * VAL);
  const right = rows.filter((line) => {
    const [id, label] = line.split(',').map(Number);
    return (id! >= 10000 ? 1 : 0) === label;
  }).length;
  assert.equal(right, Math.round((m.valAccuracy as number) * 2 * VAL));
});
