// images.transform: the normalisation comes from the backbone when the
// pipeline does not state one, also after validation has filled in the
// parameters' defaults (it once filled in ImageNet's over the backbone's own).
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import type { BackboneValue } from '../src/artifacts/backbone.js';
import { compileSchema } from '../src/runner/compiled-schema.js';
import type { Artifact, Json, StepContext } from '../src/runner/step.js';
import { transformStep } from '../src/steps/transform.js';
import { tempDir } from './support/tmp.js';

// EfficientNet-Lite4's catalogue statistics: (v − 127) / 128 on 0..255 pixels, as backbone.load states them on 0..1.
const LITE_MEAN = [127 / 255, 127 / 255, 127 / 255];
const LITE_STD = [128 / 255, 128 / 255, 128 / 255];

const backbone = (preprocessing: BackboneValue['preprocessing']): Artifact => {
  const value: BackboneValue = {
    model: 'efficientnet-lite4-11',
    sha256: '0'.repeat(64),
    source: 'catalogue',
    input: { name: 'images:0', layout: 'NHWC', height: 224, width: 224, batch: 1 },
    outputs: [{ name: 'Softmax:0', dims: [1, 1000] }],
    preprocessing,
  };
  return { stage: 'backbone', fingerprint: 'f', value: value as unknown as Json, metrics: {}, file: () => '', files: () => [] };
};

/** The parameters as the runner hands them over: validated, with the schema's defaults filled in. */
function validated(params: Record<string, unknown>): Record<string, unknown> {
  const validate = compileSchema(transformStep.paramsSchema, { allErrors: true, useDefaults: true, strict: false, verbose: true });
  const copy = structuredClone(params);
  assert.ok(validate(copy), JSON.stringify(validate.errors));
  return copy;
}

async function runTransform(params: Record<string, unknown>, inputs: Record<string, Artifact>): Promise<{ mean: number[]; std: number[]; layout: string }> {
  const outDir = await tempDir();
  const ctx = { outDir, log: () => {}, warn: () => {} } as unknown as StepContext;
  await transformStep.run(ctx, validated(params) as never, inputs);
  return JSON.parse(await readFile(path.join(outDir, 'transform.json'), 'utf8')) as { mean: number[]; std: number[]; layout: string };
}

test("images.transform takes the backbone's own normalisation when the pipeline states none", async () => {
  const spec = await runTransform({}, { backbone: backbone({ mean: LITE_MEAN, std: LITE_STD, resizeShorterSide: 256, cropSize: 224 }) });
  assert.deepEqual(spec.mean, LITE_MEAN);
  assert.deepEqual(spec.std, LITE_STD);
  assert.equal(spec.layout, 'NHWC');
});

test("images.transform: the pipeline's mean and std win over the backbone's; ImageNet's without either", async () => {
  const stated = await runTransform({ mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] }, { backbone: backbone({ mean: LITE_MEAN, std: LITE_STD, resizeShorterSide: 256, cropSize: 224 }) });
  assert.deepEqual(stated.mean, [0.5, 0.5, 0.5]);
  assert.deepEqual(stated.std, [0.25, 0.25, 0.25]);
  const plain = await runTransform({}, { backbone: backbone(null) });
  assert.deepEqual(plain.mean, [0.485, 0.456, 0.406]);
  assert.deepEqual(plain.std, [0.229, 0.224, 0.225]);
});
