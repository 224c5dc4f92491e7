// `backbone.freeze`: the backbone becomes a fixed feature extractor, its graph
// cut before the classification head (found automatically, or at a named tensor).
import { Type } from '@sinclair/typebox';
import { readFile } from 'node:fs/promises';
import { backboneKind, backboneModelPath } from '../artifacts/backbone.js';
import { featureModelKind, type FeatureModelValue, writeFeatureModel } from '../artifacts/feature-model.js';
import { cutAtFeatures } from '../onnx/cut.js';
import { defineParams, type Static } from '../params/define.js';
import { defineStep } from '../runner/step.js';

const paramsSchema = defineParams({
  tensor: Type.Optional(Type.String({ minLength: 1, description: 'Cut at this tensor instead of before the detected head.' })),
});

export const freezeStep = defineStep<Static<typeof paramsSchema>>({
  type: 'backbone.freeze',
  version: 1,
  description: 'Cuts the backbone before its classification head: an ONNX model whose output is the flat feature vector.',
  inputs: { backbone: { description: 'the backbone.load stage', kind: backboneKind.name } },
  produces: featureModelKind.name,
  paramsSchema,
  async run(ctx, params, inputs) {
    const bytes = await readFile(backboneModelPath(inputs.backbone!));
    const cut = await cutAtFeatures(bytes, { tensor: params.tensor, source: `the ${inputs.backbone!.stage} model` });
    ctx.log(`cut after ${cut.cutAfter}: ${cut.featureWidth} features, ${cut.removedNodes} head nodes removed`);
    const value: FeatureModelValue = { featureName: cut.featureName, featureWidth: cut.featureWidth, cutAfter: cut.cutAfter, removedNodes: cut.removedNodes };
    return { value: await writeFeatureModel(ctx.outDir, cut.bytes, value), metrics: { featureWidth: cut.featureWidth } };
  },
});
