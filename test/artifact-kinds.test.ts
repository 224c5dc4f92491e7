// The contract between stages: a stage wired to an artifact of the wrong kind,
// an untyped user step feeding a typed input, and a step declaring a kind that
// does not exist are reported by `tlpipe validate`, as exact text, before anything runs.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tlpipe } from './support/cli.js';
import { tempDir } from './support/tmp.js';

async function validate(files: Record<string, string>) {
  // The dataset folder exists: folders are checked at validation too.
  const dir = await tempDir({ 'package.json': '{}', 'data/.keep': '', ...files });
  return tlpipe(['validate', 'p.yaml'], { cwd: dir });
}

const head = `tlpipe: 1
name: kinds
stages:
  dataset:
    uses: images.dataset
    with: {layout: folders, train: data}
  backbone:
    uses: backbone.load
    with: {model: mobilenetv2-12-int8}
  transform:
    uses: images.transform
    inputs: {backbone: backbone}
`;

test('a raw backbone wired where a frozen feature model is needed points at the wiring and names the stage to use', async () => {
  const r = await validate({
    'p.yaml': `${head}  freeze:
    uses: backbone.freeze
    inputs: {backbone: backbone}
  features:
    uses: features.extract
    inputs: {dataset: dataset, transform: transform, model: backbone}
`,
  });
  assert.equal(r.code, 2);
  assert.equal(
    r.stderr,
    `❌ p.yaml:18:61 Input "model" of stage "features" accepts a frozen feature model (kind "feature-model"), but stage "backbone" (backbone.load) produces a pretrained backbone (kind "backbone"). Did you mean "freeze"?
        inputs: {dataset: dataset, transform: transform, model: backbone}
                                                                ~~~~~~~~

1 problem found.`,
  );
});

test('when no stage produces the kind, the built-in step that does is named', async () => {
  const r = await validate({
    'p.yaml': `${head}  head:
    uses: head.define
    inputs: {dataset: transform, model: backbone}
`,
  });
  assert.equal(r.code, 2);
  assert.equal(
    r.stderr,
    `❌ p.yaml:15:23 Input "dataset" of stage "head" accepts a dataset manifest (kind "dataset-manifest"), but stage "transform" (images.transform) produces an image transform (kind "transform"). Did you mean "dataset"?
        inputs: {dataset: transform, model: backbone}
                          ~~~~~~~~~

❌ p.yaml:15:41 Input "model" of stage "head" accepts a frozen feature model (kind "feature-model"), but stage "backbone" (backbone.load) produces a pretrained backbone (kind "backbone"). No stage of this pipeline produces one: add a backbone.freeze or backbone.quantize stage.
        inputs: {dataset: transform, model: backbone}
                                            ~~~~~~~~

2 problems found.`,
  );
});

const userStep = (declarations: string) => `export default {
  type: 'mine',
  version: 1,
  ${declarations}
  paramsSchema: { type: 'object' },
  async run() { return {}; },
};
`;

test('a user step that declares no kind feeds only inputs that accept any artifact', async () => {
  const r = await validate({
    'steps/table.mjs': userStep(''),
    'p.yaml': `${head}  table:
    uses: ./steps/table.mjs
  freeze:
    uses: backbone.freeze
    inputs: {backbone: table}
  after:
    uses: exec
    inputs: [table]
    with: {command: [echo]}
`,
  });
  assert.equal(r.code, 2);
  assert.equal(
    r.stderr,
    `❌ p.yaml:17:24 Input "backbone" of stage "freeze" accepts a pretrained backbone (kind "backbone"), but stage "table" (./steps/table.mjs) declares no artifact kind. If it writes one, declare \`produces: 'backbone'\` in its step (see docs/steps.md).
        inputs: {backbone: table}
                           ~~~~~

1 problem found.`,
  );
});

test('a user step declaring kinds is checked like a built-in one; an unknown kind gets a did-you-mean', async () => {
  const r = await validate({
    'steps/good.mjs': userStep("inputs: { model: { description: 'a feature model', kind: 'feature-model' } },\n  produces: 'features',"),
    'steps/typo.mjs': userStep("inputs: { data: { description: 'the dataset', kind: 'dataset-manfest' } },\n  produces: 'featurs',"),
    'steps/odd.mjs': userStep("produces: 'pictures',"),
    'p.yaml': `${head}  good:
    uses: ./steps/good.mjs
    inputs: {model: transform}
  typo:
    uses: ./steps/typo.mjs
    inputs: {data: dataset}
  odd:
    uses: ./steps/odd.mjs
  train:
    uses: head.train
    inputs: {head: good, features: good, dataset: dataset}
`,
  });
  assert.equal(r.code, 2);
  assert.equal(
    r.stderr,
    `❌ p.yaml:15:21 Input "model" of stage "good" accepts a frozen feature model (kind "feature-model"), but stage "transform" (images.transform) produces an image transform (kind "transform"). No stage of this pipeline produces one: add a backbone.freeze or backbone.quantize stage.
        inputs: {model: transform}
                        ~~~~~~~~~

❌ p.yaml:17:11 Step module "./steps/typo.mjs" produces unknown artifact kind "featurs". Did you mean "features"? See docs/steps.md.
        uses: ./steps/typo.mjs
              ~~~~~~~~~~~~~~~~

❌ p.yaml:17:11 Step module "./steps/typo.mjs" declares input "data" of unknown artifact kind "dataset-manfest". Did you mean "dataset-manifest"? See docs/steps.md.
        uses: ./steps/typo.mjs
              ~~~~~~~~~~~~~~~~

❌ p.yaml:20:11 Step module "./steps/odd.mjs" produces unknown artifact kind "pictures". Known kinds: dataset-manifest, backbone, transform, feature-model, features, head, trained-head, evaluation, exported-model, predictions, split-backbone, activations, finetuned-model, command-output. See docs/steps.md.
        uses: ./steps/odd.mjs
              ~~~~~~~~~~~~~~~

❌ p.yaml:23:20 Input "head" of stage "train" accepts an untrained head (kind "head"), but stage "good" (./steps/good.mjs) produces cached feature vectors (kind "features"). No stage of this pipeline produces one: add a head.define stage.
        inputs: {head: good, features: good, dataset: dataset}
                       ~~~~

5 problems found.`,
  );
});
