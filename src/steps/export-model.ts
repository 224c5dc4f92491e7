// `export.model`: one ONNX file, the frozen backbone and the trained head
// merged with a softmax output, carrying its label names and preprocessing,
// so `tlpipe predict` (or any ONNX runtime) can use it alone.
import { Type } from '@sinclair/typebox';
import { readFile } from 'node:fs/promises';
import { exportedModelKind, TRANSFORM_METADATA_KEY, writeExportedModel } from '../artifacts/exported-model.js';
import { featureModelKind, featureModelPath } from '../artifacts/feature-model.js';
import { readHead, trainedHeadKind } from '../artifacts/head.js';
import { finetunedModelKind, isFinetunedModel, readFinetunedModel } from '../artifacts/finetuned-model.js';
import { readTransformText, transformKind } from '../artifacts/transform.js';
import { mergeBackboneAndHead } from '../onnx/merge.js';
import { defineParams, type Static } from '../params/define.js';
import { defineStep } from '../runner/step.js';

const paramsSchema = defineParams({
  to: Type.String({ minLength: 1, description: 'Where to write the .onnx file, inside the project.' }),
});

export const exportModelStep = defineStep<Static<typeof paramsSchema>>({
  type: 'export.model',
  version: 1,
  description: 'Writes one ONNX model: backbone and trained head merged, softmax output, with its label names and preprocessing.',
  inputs: {
    train: { description: 'the head.train stage, or backbone.finetune (which brings its own backbone)', kind: [trainedHeadKind.name, finetunedModelKind.name] },
    model: { description: 'the backbone.freeze (or backbone.quantize) stage; not with backbone.finetune', kind: featureModelKind.name, optional: true },
    transform: { description: 'the images.transform stage', kind: transformKind.name },
  },
  produces: exportedModelKind.name,
  paramsSchema,
  check(_params, inputs) {
    const fromFinetune = inputs.train?.kind === finetunedModelKind.name;
    if (!fromFinetune && !inputs.model) return [{ message: 'export.model needs `model:` (the backbone.freeze or backbone.quantize stage) to go with a head.train stage.' }];
    if (fromFinetune && inputs.model) return [{ message: 'backbone.finetune brings its own backbone: drop `model:` from this stage.' }];
    return [];
  },
  paths: (params) => ({ writes: [{ param: 'to', path: params.to, what: 'model file' }] }),
  async run(ctx, params, inputs) {
    const to = ctx.outputPath(params.to);
    const finetuned = isFinetunedModel(inputs.train!) ? await readFinetunedModel(inputs.train!) : undefined;
    const head = finetuned?.head ?? (await readHead(inputs.train!));
    const backbone = finetuned?.features ?? (await readFile(featureModelPath(inputs.model!)));
    const transform = await readTransformText(inputs.transform!);
    const merged = mergeBackboneAndHead(backbone, head.weights, { labels: head.classes, metadata: { [TRANSFORM_METADATA_KEY]: transform } });
    const file = await writeExportedModel(ctx.outDir, merged);
    ctx.log(`${(merged.length / 1e6).toFixed(1)} MB, output "probabilities" over ${head.classes.join(', ')}`);
    return { value: { labels: head.classes, bytes: merged.length }, publish: [{ file, to }] };
  },
});
