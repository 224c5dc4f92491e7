// `backbone.finetune`: the second half of the transfer-learning recipe. The
// unfrozen top of the backbone and the head train together on the cached
// activations at the cut (an epoch costs the top alone), warm-started from the
// trained linear head; the best validation epoch is kept, and the linear
// probe itself when nothing beats it.
//
// A step of its own rather than a head.train mode: it reads other artifacts
// (the split backbone and the activations instead of features), produces a
// different one (a feature extractor with trained weights plus a head), and
// needs the trained head as its starting point.
import { Type } from '@sinclair/typebox';
import { readFile } from 'node:fs/promises';
import { activationsKind, ActivationReader, readActivationTable } from '../artifacts/activations.js';
import { datasetManifestKind, datasetPreview } from '../artifacts/dataset-manifest.js';
import { finetunedModelKind, writeFinetunedModel } from '../artifacts/finetuned-model.js';
import { readHead, trainedHeadKind, type TrainingValue } from '../artifacts/head.js';
import { bottomModelPath, frozenModelPath, readTop, splitBackboneKind, splitBackboneValue } from '../artifacts/split-backbone.js';
import { betterScore } from '../finetune/early-stopping.js';
import { resolveDevice } from '../onnx/runtime.js';
import { defineParams, type Static, StringEnum } from '../params/define.js';
import { StepFailure } from '../runner/errors.js';
import { onnxRuntimeKey } from '../runner/runtime-key.js';
import { defineStep, type Json } from '../runner/step.js';

const paramsSchema = defineParams({
  epochs: Type.Integer({ minimum: 1, maximum: 10000, default: 10, description: 'Most epochs over the training activations.' }),
  batchSize: Type.Integer({ minimum: 1, maximum: 4096, default: 32, description: 'Images per step.' }),
  lr: Type.Number({ exclusiveMinimum: 0, maximum: 10, default: 1e-4, description: "The head's learning rate (AdamW)." }),
  blockLr: Type.Number({ exclusiveMinimum: 0, maximum: 10, default: 1e-4, description: "The unfrozen blocks' learning rate (see docs/finetune.md for how the default was chosen)." }),
  weightDecay: Type.Number({ minimum: 0, maximum: 100, default: 0.01, description: "AdamW's decoupled weight decay, for blocks and head." }),
  patience: Type.Union([Type.Integer({ minimum: 1, maximum: 10000 }), Type.Null()], {
    default: 3,
    description: 'Stop after this many epochs with neither a better validation accuracy nor a lower validation loss (null: run every epoch); the best epoch (accuracy, then loss) is kept either way.',
  }),
  seed: Type.Integer({ minimum: 0, maximum: 4294967295, default: 0, description: 'Seed of the batch order.' }),
  device: StringEnum(['auto', 'cpu', 'cuda'], { default: 'auto', description: "'cuda' runs the fine-tuning graphs on the CUDA provider (see README); 'auto' falls back to the CPU." }),
  intraOpThreads: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024, description: 'onnxruntime threads (default: all cores).' })),
});
type FinetuneParams = Static<typeof paramsSchema>;

const pct = (x: number | null) => (x === null ? '-' : `${(100 * x).toFixed(2)}%`);
const num = (x: number | null) => (x === null ? '-' : x.toFixed(4));

/** The linear probe's validation score, as head.train recorded it. */
function probeScore(value: Json): { accuracy: number; loss: number } | undefined {
  const v = value as unknown as Partial<TrainingValue>;
  const best = v.history?.find((e) => e.epoch === v.bestEpoch);
  return best && best.valAccuracy !== null && best.valLoss !== null ? { accuracy: best.valAccuracy, loss: best.valLoss } : undefined;
}

export const finetuneStep = defineStep<FinetuneParams>({
  type: 'backbone.finetune',
  version: 2,
  description: 'Fine-tunes the unfrozen top of the backbone and the head together on the cached activations, warm-started from the trained head; keeps the best validation epoch, or the probe when nothing beats it.',
  inputs: {
    split: { description: 'the backbone.split stage', kind: splitBackboneKind.name },
    activations: { description: 'the activations.extract stage', kind: activationsKind.name },
    dataset: { description: 'the images.dataset stage', kind: datasetManifestKind.name },
    train: { description: 'the head.train stage: the warm start, and the probe to beat', kind: trainedHeadKind.name },
  },
  produces: finetunedModelKind.name,
  paramsSchema,

  check(_params, inputs) {
    const dataset = inputs.dataset;
    if (dataset && datasetPreview(dataset)?.hasValidationSplit === false) {
      return [{ message: `fine-tuning keeps its best epoch by validation accuracy, but stage "${dataset.stage}" holds no validation images out: give it valFraction above 0 or a validation folder.` }];
    }
    return [];
  },

  async dependencies(params) {
    return { runtime: await onnxRuntimeKey(params.device) };
  },

  async run(ctx, params, inputs) {
    const split = splitBackboneValue(inputs.split!);
    const head = await readHead(inputs.train!);
    if (head.weights.layers[0]!.inFeatures !== split.featureWidth) {
      throw new StepFailure(`the trained head takes ${head.weights.layers[0]!.inFeatures} features, but the split backbone's top gives ${split.featureWidth}: train the head on the same backbone`);
    }
    const table = await readActivationTable(inputs.activations!, inputs.dataset!);
    const train = table.split('train', { augmented: true });
    const val = table.split('val');
    if (!train.matrixRows.length) throw new StepFailure('there are no training images with activations: check the dataset stage');
    if (!val.matrixRows.length) throw new StepFailure('there are no validation images with activations: the best epoch is chosen on them');
    const device = await resolveDevice(params.device, (m) => ctx.log(m));
    const top = await readTop(inputs.split!);
    const probe = probeScore(inputs.train!.value);
    ctx.log(`${train.matrixRows.length} training and ${val.matrixRows.length} validation rows of ${split.inputShape.join('×')}; ${split.trainableParameters.toLocaleString('en-US')} block parameters at lr ${params.blockLr}, the head at lr ${params.lr}`);
    if (probe) ctx.log(`the linear probe to beat: val accuracy ${pct(probe.accuracy)}, loss ${num(probe.loss)}`);

    const [{ finetune }, { topOf, headOf }, { attachTop }] = await Promise.all([import('../finetune/train.js'), import('../finetune/engine.js'), import('../finetune/export.js')]);
    const reader = await ActivationReader.open(inputs.activations!, table.rows);
    let result;
    try {
      result = await finetune({
        top,
        head: head.weights,
        fetch: (rows, out) => reader.read(rows, out),
        train: { rows: train.matrixRows, labels: train.labels },
        val: { rows: val.matrixRows, labels: val.labels },
        spec: { ...params, device, threads: params.intraOpThreads },
        signal: ctx.signal,
        onEpoch: (e) =>
          ctx.log(
            e.epoch === 0
              ? `start (linear head on the float32 top): val loss ${num(e.valLoss)} acc ${pct(e.valAccuracy)}`
              : `epoch ${e.epoch}/${params.epochs}: train loss ${num(e.trainLoss)} acc ${pct(e.trainAccuracy)} | val loss ${num(e.valLoss)} acc ${pct(e.valAccuracy)} (${e.seconds.toFixed(1)} s)`,
          ),
      });
    } finally {
      await reader.close();
    }
    const best = result.history.find((e) => e.epoch === result.bestEpoch)!;
    // The probe stays when fine-tuning does not beat it: same accuracy at a higher loss is no gain.
    const keptProbe = probe !== undefined && !betterScore(best, { valAccuracy: probe.accuracy, valLoss: probe.loss });
    const features = keptProbe
      ? new Uint8Array(await readFile(frozenModelPath(inputs.split!)))
      : attachTop(new Uint8Array(await readFile(bottomModelPath(inputs.split!))), topOf(top, result.best), split.featureWidth);
    const weights = keptProbe ? head.weights : headOf(head.weights, result.best);
    const final = keptProbe ? { valAccuracy: probe!.accuracy, valLoss: probe!.loss } : { valAccuracy: best.valAccuracy, valLoss: best.valLoss };
    ctx.log(
      keptProbe
        ? `no epoch beat the linear probe (best: epoch ${result.bestEpoch}, ${pct(best.valAccuracy)}): the probe is kept, frozen backbone and head as they were`
        : `best epoch ${result.bestEpoch}${result.stoppedEarly ? ', stopped early' : ''}: val accuracy ${pct(best.valAccuracy)}${probe ? ` (probe ${pct(probe.accuracy)})` : ''}`,
    );
    const trainedEpochs = result.history.filter((e) => e.epoch > 0);
    const epochSeconds = trainedEpochs.map((e) => e.seconds).sort((a, b) => a - b)[Math.floor(trainedEpochs.length / 2)] ?? null;
    const value = {
      history: result.history as unknown as Json,
      bestEpoch: result.bestEpoch,
      stoppedEarly: result.stoppedEarly,
      keptProbe,
      probe: probe ?? null,
      classes: head.classes,
      device,
      valAccuracy: final.valAccuracy,
      valLoss: final.valLoss,
      cutTensor: split.cutTensor,
    };
    await writeFinetunedModel(ctx.outDir, features, { spec: head.spec, classes: head.classes, weights, metadata: { bestEpoch: result.bestEpoch, keptProbe, cutTensor: split.cutTensor } }, value);
    return {
      value,
      metrics: { trainRows: train.matrixRows.length, valRows: val.matrixRows.length, bestEpoch: result.bestEpoch, valAccuracy: final.valAccuracy, valLoss: final.valLoss, probeValAccuracy: probe?.accuracy ?? null, keptProbe, epochSeconds },
    };
  },
});
