// `head.train`: trains the head on the cached features (cross-entropy; Adam,
// AdamW or SGD; early stopping keeping the best epoch) and prints each epoch's
// train and validation loss and accuracy, as the classic script does.
import { datasetManifestKind, datasetPreview } from '../artifacts/dataset-manifest.js';
import { featuresKind, readFeatureTable, splitFeatures } from '../artifacts/features.js';
import { headKind, readHead, trainedHeadKind, trainingValueJson, writeHead } from '../artifacts/head.js';
import { defineParams, type Static, StringEnum } from '../params/define.js';
import { trainSpecProblems, trainSpecProperties, trainSpecSchema } from '../train/spec.js';
import { checkTrainingInput, describeSearch, recordOf } from '../train/train-record.js';
import { StepFailure } from '../runner/errors.js';
import { defineStep } from '../runner/step.js';
import { resolveDevice } from '../onnx/runtime.js';
import { onnxRuntimeKey } from '../runner/runtime-key.js';

const paramsSchema = defineParams({
  ...trainSpecProperties,
  device: StringEnum(['auto', 'cpu', 'cuda'], {
    default: 'auto',
    description: "'cuda' runs the ONNX training graph on the CUDA provider (see README); 'auto' falls back to the CPU.",
  }),
}, { title: trainSpecSchema.title, description: trainSpecSchema.description });
type TrainParams = Static<typeof paramsSchema>;

const pct = (x: number | null) => (x === null ? '-' : `${(100 * x).toFixed(2)}%`);
const num = (x: number | null) => (x === null ? '-' : x.toFixed(4));

export const trainStep = defineStep<TrainParams>({
  type: 'head.train',
  version: 2,
  description: 'Trains the head on the cached features; prints train and validation loss and accuracy per epoch; keeps the best epoch.',
  inputs: {
    head: { description: 'the head.define stage', kind: headKind.name },
    features: { description: 'the features.extract stage', kind: featuresKind.name },
    dataset: { description: 'the images.dataset stage', kind: datasetManifestKind.name },
  },
  produces: trainedHeadKind.name,
  paramsSchema,

  check(params, inputs) {
    const problems = trainSpecProblems(params);
    if (params.device === 'cuda' && params.engine === 'typescript') {
      problems.push({ at: 'device', message: "device 'cuda' needs engine 'onnx' (or 'auto'): the typescript engine runs on the CPU only." });
    }
    const dataset = inputs.dataset;
    if (typeof params.patience === 'number' && dataset && datasetPreview(dataset)?.hasValidationSplit === false) {
      problems.push({
        at: 'patience',
        message: `patience (early stopping) needs a validation split, but stage "${dataset.stage}" holds none out: give it valFraction above 0 or a validation folder, or set patience: null.`,
      });
    }
    return problems;
  },

  async dependencies(params) {
    return { runtime: await onnxRuntimeKey(params.device) };
  },

  async run(ctx, params, inputs) {
    const head = await readHead(inputs.head!);
    const table = await readFeatureTable(inputs.features!, inputs.dataset!);
    const trainSplit = splitFeatures(table, 'train', { augmented: true });
    const valSplit = splitFeatures(table, 'val');
    if (!trainSplit.images.length) throw new StepFailure('there are no training images with features: check the dataset stage');
    const problem = checkTrainingInput(params, head.classes, table.width, trainSplit, valSplit);
    if (problem) throw new StepFailure(problem);
    const device = await resolveDevice(params.device, (m) => ctx.log(m));
    ctx.log(`${trainSplit.images.length} training and ${valSplit.images.length} validation feature vectors of width ${table.width}`);
    const { train } = await import('../train/train.js'); // onnxruntime, only when training
    const result = await train({
        data: {
          featureWidth: table.width,
          classes: head.classes.length,
          train: { features: trainSplit.features, labels: trainSplit.labels },
          ...(valSplit.images.length ? { val: { features: valSplit.features, labels: valSplit.labels } } : {}),
        },
        head: head.spec,
        initialWeights: head.weights,
        spec: { ...params, device },
        signal: ctx.signal,
        onEpoch: (m) =>
          ctx.log(
            `${params.optimizer === 'lbfgs' ? 'lbfgs' : `epoch ${m.epoch}/${params.epochs}`}: train loss ${num(m.trainLoss)} acc ${pct(m.trainAccuracy)} | val loss ${num(m.valLoss)} acc ${pct(m.valAccuracy)}`,
          ),
        onCandidate: (c) => ctx.log(`weightDecay ${c.weightDecay}: held-out accuracy ${pct(c.accuracy)} loss ${num(c.loss)} (${c.iterations} iterations${c.converged ? '' : ', not converged'})`),
      });
    ctx.log(`engine ${result.engine} on ${result.device} (${result.engineReason}); best epoch ${result.bestEpoch}${result.stoppedEarly ? ', stopped early' : ''}`);
    for (const line of describeSearch(result)) ctx.log(line);
    const record = recordOf(result);
    await writeHead(ctx.outDir, { spec: head.spec, classes: head.classes, weights: result.weights, metadata: { bestEpoch: result.bestEpoch, ...record.metadata } });
    const best = result.history[result.bestEpoch - 1]!;
    return {
      value: trainingValueJson({
        history: result.history,
        bestEpoch: result.bestEpoch,
        stoppedEarly: result.stoppedEarly,
        classes: head.classes,
        engine: result.engine,
        device: result.device,
        ...record.value,
      }),
      metrics: { bestEpoch: result.bestEpoch, trainLoss: best.trainLoss, trainAccuracy: best.trainAccuracy, valLoss: best.valLoss, valAccuracy: best.valAccuracy, weightDecay: result.weightDecay },
    };
  },
});
