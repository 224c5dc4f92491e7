// `export.csv`: predictions for the test images as `id,label` sorted by numeric
// id (the Kaggle submission format), optionally with class probabilities.
// The runner publishes the file atomically to `to`.
import { Type } from '@sinclair/typebox';
import path from 'node:path';
import { datasetManifestKind } from '../artifacts/dataset-manifest.js';
import { featuresKind, readSplitFeatures } from '../artifacts/features.js';
import { readHead, trainedHeadKind } from '../artifacts/head.js';
import { predictionsKind, writePredictions } from '../artifacts/predictions.js';
import { compareIds } from '../images/order.js';
import { defineParams, type Static, StringEnum } from '../params/define.js';
import { defineStep } from '../runner/step.js';

const paramsSchema = defineParams({
  to: Type.String({ minLength: 1, description: 'Where to write the CSV, inside the project.' }),
  label: StringEnum(['index', 'name'], { default: 'index', description: "'index': the class number (cat 0, dog 1); 'name': the class name." }),
  probabilities: Type.Boolean({ default: false, description: 'Add one probability column per class.' }),
});

/** RFC 4180 quoting, only where needed. */
const csvField = (v: string | number) => {
  const s = String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

export const exportCsvStep = defineStep<Static<typeof paramsSchema>>({
  type: 'export.csv',
  version: 1,
  description: 'Writes the test images\' predictions as a CSV `id,label` sorted by numeric id (Kaggle format), optionally with class probabilities.',
  inputs: {
    train: { description: 'the head.train stage', kind: trainedHeadKind.name },
    features: { description: 'the features.extract stage', kind: featuresKind.name },
    dataset: { description: 'the images.dataset stage', kind: datasetManifestKind.name },
  },
  produces: predictionsKind.name,
  paramsSchema,
  paths: (params) => ({ writes: [{ param: 'to', path: params.to, what: 'CSV' }] }),
  async run(ctx, params, inputs) {
    const to = ctx.outputPath(params.to);
    const head = await readHead(inputs.train!);
    const test = await readSplitFeatures(inputs.features!, inputs.dataset!, 'test');
    if (!test.images.length) return { nothingToDo: 'the dataset has no test images to predict (give it a test folder)' };
    const { predict } = await import('../train/evaluate.js'); // onnxruntime, only when predicting
    const { labels, probabilities } = await predict(head.weights, test.features);
    const C = head.classes.length;
    const order = test.images.map((image, i) => i).sort((a, b) => compareIds(test.images[a]!.id ?? '', test.images[b]!.id ?? ''));
    const header = ['id', 'label', ...(params.probabilities ? head.classes.map((c) => `p_${c}`) : [])];
    const lines = [header.map(csvField).join(',')];
    for (const i of order) {
      const label = params.label === 'name' ? head.classes[labels[i]!]! : labels[i]!;
      const probs = params.probabilities ? Array.from(probabilities.subarray(i * C, (i + 1) * C), (p) => p.toFixed(6)) : [];
      lines.push([test.images[i]!.id ?? path.basename(test.images[i]!.path), label, ...probs].map(csvField).join(','));
    }
    const file = await writePredictions(ctx.outDir, `${lines.join('\n')}\n`);
    const counts = head.classes.map((c, k) => `${c} ${labels.filter((l) => l === k).length}`).join(', ');
    ctx.log(`${order.length} predictions (${counts})`);
    return { value: { rows: order.length }, metrics: { rows: order.length }, publish: [{ file, to }] };
  },
});
