// Rules between parameters (a step's `check`) are reported by `tlpipe
// validate` at the line of the parameter, as exact text, before anything runs.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tlpipe } from './support/cli.js';
import { tempDir } from './support/tmp.js';

const pipeline = (dataset: string, train: string) => `tlpipe: 1
name: checks
stages:
  dataset:
    uses: images.dataset
    with: {layout: folders, train: data${dataset}}
  backbone:
    uses: backbone.load
    with: {model: mobilenetv2-12-int8}
  transform:
    uses: images.transform
    inputs: {backbone: backbone}
  freeze:
    uses: backbone.freeze
    inputs: {backbone: backbone}
  features:
    uses: features.extract
    inputs: {dataset: dataset, transform: transform, model: freeze}
  head:
    uses: head.define
    inputs: {dataset: dataset, model: freeze}
  train:
    uses: head.train
    inputs: {head: head, features: features, dataset: dataset}
    with:
${train}`;

async function validate(text: string) {
  // The dataset folder exists: folders are checked at validation too.
  const dir = await tempDir({ 'package.json': '{}', 'data/.keep': '', 'p.yaml': text });
  return tlpipe(['validate', 'p.yaml'], { cwd: dir });
}

test('Nesterov momentum needs momentum: reported at nesterov', async () => {
  const r = await validate(pipeline('', '      optimizer: sgd\n      momentum: 0\n      nesterov: true\n'));
  assert.equal(r.code, 2);
  assert.equal(
    r.stderr,
    `❌ p.yaml:28:17 Stage "train": nesterov momentum needs momentum > 0 and dampening 0 (momentum is 0, dampening 0).
          nesterov: true
                    ~~~~

1 problem found.`,
  );
});

test('lrMin above lr with the cosine schedule: reported at lrMin', async () => {
  const r = await validate(pipeline('', '      lr: 0.01\n      lrSchedule: cosine\n      lrMin: 0.1\n'));
  assert.equal(r.code, 2);
  assert.equal(
    r.stderr,
    `❌ p.yaml:28:14 Stage "train": lrMin (0.1) is above lr (0.01): the cosine schedule anneals from lr down to lrMin.
          lrMin: 0.1
                 ~~~

1 problem found.`,
  );
});

test('patience needs a validation split: reported at patience when the dataset holds none out', async () => {
  const r = await validate(pipeline(', valFraction: 0', '      patience: 3\n'));
  assert.equal(r.code, 2);
  assert.equal(
    r.stderr,
    `❌ p.yaml:26:17 Stage "train": patience (early stopping) needs a validation split, but stage "dataset" holds none out: give it valFraction above 0 or a validation folder, or set patience: null.
          patience: 3
                    ~

1 problem found.`,
  );
  // A validation folder is a validation split, whatever valFraction says.
  const ok = await validate(pipeline(', valFraction: 0, val: val', '      patience: 3\n'));
  assert.match(ok.stderr, /^✔ p\.yaml is valid: 7 stages/);
  assert.equal(ok.code, 0);
});

test('CUDA with the TypeScript engine: reported at device', async () => {
  const r = await validate(pipeline('', '      engine: typescript\n      device: cuda\n'));
  assert.equal(r.code, 2);
  assert.equal(
    r.stderr,
    `❌ p.yaml:27:15 Stage "train": device 'cuda' needs engine 'onnx' (or 'auto'): the typescript engine runs on the CPU only.
          device: cuda
                  ~~~~

1 problem found.`,
  );
});

test('every problem at once, and none of them when the rules hold', async () => {
  const r = await validate(pipeline(', valFraction: 0', '      optimizer: sgd\n      momentum: 0\n      nesterov: true\n      patience: 2\n'));
  assert.equal(r.code, 2);
  assert.match(r.stderr, /2 problems found\.$/);
  const ok = await validate(pipeline('', '      optimizer: sgd\n      momentum: 0.9\n      nesterov: true\n      patience: 2\n      lrSchedule: cosine\n      lrMin: 0.0001\n'));
  assert.match(ok.stderr, /^✔ p\.yaml is valid: 7 stages/);
  assert.equal(ok.code, 0);
});
