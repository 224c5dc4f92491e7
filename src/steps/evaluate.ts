// `head.evaluate`: accuracy, loss, per-class precision/recall/F1 and the
// confusion matrix on the validation split, plus the misclassified images.
import { datasetManifestKind } from '../artifacts/dataset-manifest.js';
import { evaluationKind, type EvaluationValue, writeEvaluation } from '../artifacts/evaluation.js';
import { featuresKind, readSplitFeatures } from '../artifacts/features.js';
import { readHead, trainedHeadKind } from '../artifacts/head.js';
import { defineParams, type Static, StringEnum } from '../params/define.js';
import { StepFailure } from '../runner/errors.js';
import { defineStep } from '../runner/step.js';

const paramsSchema = defineParams({
  split: StringEnum(['val', 'train'], { default: 'val', description: 'The split to evaluate on.' }),
});

export const evaluateStep = defineStep<Static<typeof paramsSchema>>({
  type: 'head.evaluate',
  version: 1,
  description: 'Accuracy, loss, per-class precision, recall and F1, and the confusion matrix on the validation split.',
  inputs: {
    train: { description: 'the head.train stage', kind: trainedHeadKind.name },
    features: { description: 'the features.extract stage', kind: featuresKind.name },
    dataset: { description: 'the images.dataset stage', kind: datasetManifestKind.name },
  },
  produces: evaluationKind.name,
  paramsSchema,
  async run(ctx, params, inputs) {
    const head = await readHead(inputs.train!);
    const split = await readSplitFeatures(inputs.features!, inputs.dataset!, params.split);
    if (!split.images.length) throw new StepFailure(`the ${params.split} split has no images: give a validation folder or a valFraction above 0`);
    const { evaluate, predict } = await import('../train/evaluate.js'); // onnxruntime, only when evaluating
    const result = await evaluate(head.weights, split.features, split.labels, head.classes);
    const { probabilities, labels } = await predict(head.weights, split.features);
    const C = head.classes.length;
    const misclassified = split.images
      .map((image, i) => ({ image, i }))
      .filter(({ i }) => labels[i] !== split.labels[i])
      .map(({ image, i }) => ({
        path: image.path,
        id: image.id,
        trueLabel: head.classes[split.labels[i]!]!,
        predictedLabel: head.classes[labels[i]!]!,
        confidence: probabilities[i * C + labels[i]!]!,
      }))
      .sort((a, b) => b.confidence - a.confidence);
    const report: EvaluationValue = {
      classes: head.classes,
      perClass: result.perClass.map((c) => ({ class: c.name, precision: c.precision, recall: c.recall, f1: c.f1, support: c.support })),
      confusion: result.confusion,
      misclassified,
    };
    const value = await writeEvaluation(ctx.outDir, result, report);
    ctx.log(`${params.split}: accuracy ${(100 * result.accuracy).toFixed(2)}% (${result.count - misclassified.length}/${result.count}), loss ${result.loss.toFixed(4)}, macro F1 ${result.macroF1.toFixed(4)}`);
    for (const c of report.perClass) {
      ctx.log(`  ${c.class}: precision ${c.precision.toFixed(4)} recall ${c.recall.toFixed(4)} F1 ${c.f1.toFixed(4)} (${c.support})`);
    }
    ctx.log(`  confusion (rows true, columns predicted ${head.classes.join(', ')}): ${result.confusion.map((r) => `[${r.join(' ')}]`).join(' ')}`);
    return {
      value,
      metrics: { accuracy: result.accuracy, loss: result.loss, macroF1: result.macroF1, count: result.count },
    };
  },
});
