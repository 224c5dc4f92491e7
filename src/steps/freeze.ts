// `backbone.freeze`: the backbone becomes a fixed feature extractor, its graph
// cut before the classification head (found automatically, or at a named tensor).
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { cutAtFeatures } from '../onnx/cut.js';
import { StepFailure } from '../runner/errors.js';
import { defineStep, type Json } from '../runner/step.js';

export interface FreezeParams {
  tensor?: string;
}

export interface FreezeValue {
  featureName: string;
  featureWidth: number;
  cutAfter: string;
  removedNodes: number;
}

export const freezeStep = defineStep<FreezeParams>({
  type: 'backbone.freeze',
  version: 1,
  description: 'Cuts the backbone before its classification head: an ONNX model whose output is the flat feature vector.',
  inputs: { backbone: { description: 'the backbone.load stage' } },
  paramsSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      tensor: { type: 'string', minLength: 1, description: 'Cut at this tensor instead of before the detected head.' },
    },
  },
  async run(ctx, params, inputs) {
    const bytes = await readFile(inputs.backbone!.file('model.onnx'));
    let cut;
    try {
      cut = await cutAtFeatures(bytes, { tensor: params.tensor, source: `the ${inputs.backbone!.stage} model` });
    } catch (e) {
      throw new StepFailure((e as Error).message);
    }
    await writeFile(path.join(ctx.outDir, 'features.onnx'), cut.bytes);
    ctx.log(`cut after ${cut.cutAfter}: ${cut.featureWidth} features, ${cut.removedNodes} head nodes removed`);
    const value: FreezeValue = { featureName: cut.featureName, featureWidth: cut.featureWidth, cutAfter: cut.cutAfter, removedNodes: cut.removedNodes };
    return { value: value as unknown as Json, metrics: { featureWidth: cut.featureWidth } };
  },
});
