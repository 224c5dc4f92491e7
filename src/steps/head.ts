// `head.define`: the new classification head that replaces the backbone's
// (the classic `fc = Linear(features, classes)`, or a small MLP), initialised
// from a seed. The class count comes from the dataset, the width from the freeze.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { headSpecSchema, initHead, type HeadSpec } from '../train/head.js';
import { encodeHead } from '../train/serialize.js';
import { defineStep } from '../runner/step.js';
import type { FreezeValue } from './freeze.js';
import { withoutIds } from './schema.js';

export const HEAD_FILE = 'head.bin';

export const headStep = defineStep<HeadSpec>({
  type: 'head.define',
  version: 1,
  description: 'Declares the new classification head (linear, or an MLP with ReLU and dropout) and initialises it from a seed.',
  inputs: {
    dataset: { description: 'the images.dataset stage (class names)' },
    model: { description: 'the backbone.freeze stage (feature width)' },
  },
  paramsSchema: withoutIds(headSpecSchema),
  async run(ctx, params, inputs) {
    const classes = (inputs.dataset!.value as { classes: string[] }).classes;
    const { featureWidth } = inputs.model!.value as unknown as FreezeValue;
    const weights = initHead(params, featureWidth, classes.length);
    await writeFile(path.join(ctx.outDir, HEAD_FILE), encodeHead({ spec: params, classes, weights }));
    const shape = [featureWidth, ...(params.kind === 'mlp' ? params.hidden : []), classes.length].join(' → ');
    ctx.log(`${params.kind} head ${shape}`);
    return { value: { kind: params.kind, shape, classes } };
  },
});
