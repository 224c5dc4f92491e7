// `activations.extract`: the frozen bottom's forward pass over every image,
// done once, with features.extract's machinery (chunked, resumable, keyed by
// model, transform and image content): a change of learning rate or epochs
// reuses them. Stored as 8-bit codes when the cut is quantized.
import { activationsKind, writeActivations } from '../artifacts/activations.js';
import { datasetManifestKind } from '../artifacts/dataset-manifest.js';
import { bottomModelPath, splitBackboneKind, splitBackboneValue } from '../artifacts/split-backbone.js';
import { transformKind } from '../artifacts/transform.js';
import { codedRows } from '../features/chunks.js';
import { imageRuntimeKey } from '../runner/runtime-key.js';
import { defineStep } from '../runner/step.js';
import { computeRows, type FeaturesParams, featuresParamsSchema } from './features.js';

const formatBytes = (n: number) => (n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : `${(n / 1e6).toFixed(1)} MB`);

export const activationsStep = defineStep<FeaturesParams>({
  type: 'activations.extract',
  version: 1,
  description: "Runs the split backbone's frozen bottom once over every image and caches its activations at the cut; resumable, and only new images are computed.",
  inputs: {
    dataset: { description: 'the images.dataset stage', kind: datasetManifestKind.name },
    transform: { description: 'the images.transform stage', kind: transformKind.name },
    split: { description: 'the backbone.split stage', kind: splitBackboneKind.name },
  },
  produces: activationsKind.name,
  paramsSchema: featuresParamsSchema,

  async dependencies(params) {
    return { runtime: await imageRuntimeKey(params.device) };
  },

  async run(ctx, params, inputs) {
    const split = splitBackboneValue(inputs.split!);
    const rows = await computeRows(ctx, params, inputs.dataset!, inputs.transform!, {
      path: bottomModelPath(inputs.split!),
      width: split.activationWidth,
      fingerprint: inputs.split!.fingerprint,
      spread: false,
      // A quantized cut's rows are 8-bit codes in the chunk log too, as in the artifact.
      ...(split.codes ? { codec: codedRows(split.codes) } : {}),
    });
    const bytes = await writeActivations(ctx.outDir, rows.matrix, { ...rows.table, ...(split.codes ? { codes: split.codes } : {}) });
    const count = rows.table.rows.length + (rows.table.augmentedRows?.length ?? 0);
    ctx.log(
      `${count} activation rows of ${split.inputShape.join('×')} at "${split.cutTensor}": ${formatBytes(bytes)}` +
        (split.codes ? ` as ${split.codes.type} codes (${formatBytes(bytes * 4)} as float32)` : ' as float32'),
    );
    return { value: { ...(rows.value as object), bytes, stored: split.codes ? split.codes.type : 'float32' }, metrics: { ...rows.metrics, bytes }, chunkScopes: [rows.scope] };
  },
});
