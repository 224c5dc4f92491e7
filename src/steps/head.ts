// `head.define`: the new classification head that replaces the backbone's
// (the classic `fc = Linear(features, classes)`, or a small MLP), initialised
// from a seed. The class count comes from the dataset, the width from the freeze.
import { datasetManifestKind, datasetValue } from '../artifacts/dataset-manifest.js';
import { featureModelKind, featureModelValue } from '../artifacts/feature-model.js';
import { headKind, writeHead } from '../artifacts/head.js';
import { headSpecSchema, initHead, type HeadSpec } from '../train/head.js';
import { defineStep } from '../runner/step.js';
import { withoutIds } from './schema.js';

export const headStep = defineStep<HeadSpec>({
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
    const weights = initHead(params, featureWidth, classes.length);
    await writeHead(ctx.outDir, { spec: params, classes, weights });
    const shape = [featureWidth, ...(params.kind === 'mlp' ? params.hidden : []), classes.length].join(' → ');
    ctx.log(`${params.kind} head ${shape}`);
    return { value: { kind: params.kind, shape, classes } };
  },
});
