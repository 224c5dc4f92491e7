// `head.define`: the new classification head that replaces the backbone's
// (the classic `fc = Linear(features, classes)`, or a small MLP), initialised
// from a seed. The class count comes from the dataset, the width from the freeze.
import { datasetManifestKind, datasetValue } from '../artifacts/dataset-manifest.js';
import { featureModelKind, featureModelValue } from '../artifacts/feature-model.js';
import { headKind, writeHead } from '../artifacts/head.js';
import { type HeadParams, headSpecOf, headSpecSchema, initHead } from '../train/head.js';
import { defineStep } from '../runner/step.js';
import { withoutIds } from './schema.js';

export const headStep = defineStep<HeadParams>({
  type: 'head.define',
  version: 1,
  description: 'Declares the new classification head (linear, or an MLP with ReLU and dropout) and initialises it from a seed.',
  inputs: {
    dataset: { description: 'the images.dataset stage (class names)', kind: datasetManifestKind.name },
    model: { description: 'the backbone.freeze stage (feature width)', kind: featureModelKind.name },
  },
  produces: headKind.name,
  paramsSchema: withoutIds(headSpecSchema),
  async run(ctx, params, inputs) {
    const { classes } = datasetValue(inputs.dataset!);
    const { featureWidth } = featureModelValue(inputs.model!);
    const spec = headSpecOf(params);
    const weights = initHead(spec, featureWidth, classes.length);
    await writeHead(ctx.outDir, { spec, classes, weights });
    const shape = [featureWidth, ...(spec.kind === 'mlp' ? spec.hidden : []), classes.length].join(' → ');
    ctx.log(`${spec.kind} head ${shape}`);
    return { value: { kind: spec.kind, shape, classes } };
  },
});
