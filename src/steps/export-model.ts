// `export.model`: one ONNX file, the frozen backbone and the trained head
// merged with a softmax output, carrying its label names and preprocessing,
// so `tlpipe predict` (or any ONNX runtime) can use it alone.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { mergeBackboneAndHead } from '../onnx/merge.js';
import { decodeHead } from '../train/serialize.js';
import { StepFailure } from '../runner/errors.js';
import { defineStep } from '../runner/step.js';
import { HEAD_FILE } from './head.js';
import { TRANSFORM_METADATA_KEY } from '../predict/predict.js';

export const exportModelStep = defineStep<{ to: string }>({
  type: 'export.model',
  version: 1,
  description: 'Writes one ONNX model: backbone and trained head merged, softmax output, with its label names and preprocessing.',
  inputs: {
    train: { description: 'the head.train stage' },
    model: { description: 'the backbone.freeze stage' },
    transform: { description: 'the images.transform stage' },
  },
  paramsSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['to'],
    properties: { to: { type: 'string', minLength: 1, description: 'Where to write the .onnx file, inside the project.' } },
  },
  async run(ctx, params, inputs) {
    const to = ctx.outputPath(params.to);
    const head = decodeHead(await readFile(inputs.train!.file(HEAD_FILE)));
    const backbone = await readFile(inputs.model!.file('features.onnx'));
    const transform = await readFile(inputs.transform!.file('transform.json'), 'utf8');
    let merged: Uint8Array;
    try {
      merged = mergeBackboneAndHead(backbone, head.weights, { labels: head.classes, metadata: { [TRANSFORM_METADATA_KEY]: transform } });
    } catch (e) {
      throw new StepFailure((e as Error).message);
    }
    await writeFile(path.join(ctx.outDir, 'model.onnx'), merged);
    ctx.log(`${(merged.length / 1e6).toFixed(1)} MB, output "probabilities" over ${head.classes.join(', ')}`);
    return { value: { labels: head.classes, bytes: merged.length }, publish: [{ file: 'model.onnx', to }] };
  },
});
