// `backbone.quantize`: the frozen float backbone as a static int8 model
// (src/onnx/quantize.ts), calibrated on a seeded sample of the training
// images with the pipeline's own transform. Its artifact is a feature model
// like backbone.freeze's, so features.extract and export.model take either.
import { Type } from '@sinclair/typebox';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { datasetManifestKind, readDatasetManifest } from '../artifacts/dataset-manifest.js';
import { featureModelKind, featureModelPath, featureModelValue, type FeatureModelValue, writeFeatureModel } from '../artifacts/feature-model.js';
import { readTransform, transformKind } from '../artifacts/transform.js';
import { createRng, shuffleInPlace } from '../images/random.js';
import { fixedOutputSize } from '../images/transform-spec.js';
import { type CalibrationBatch, quantizeModel } from '../onnx/quantize.js';
import { defineParams, type Static } from '../params/define.js';
import { StepFailure } from '../runner/errors.js';
import { defineStep } from '../runner/step.js';
import { PhaseTimer } from '../phase-timer.js';
import { spinningAlone } from '../features/threads.js';

export interface QuantizeValue extends FeatureModelValue {
  quantization: {
    quantizedNodes: Record<string, number>;
    keptFloat: number;
    perChannel: boolean;
    calibrationImages: number;
    cosineMean: number;
    cosineMin: number;
    bytesBefore: number;
    bytesAfter: number;
  };
}

/** "97.4 → 24.5 MB", or in kB for small models. */
function megabytes(before: number, after: number): string {
  const [unit, div] = before >= 1e6 ? ['MB', 1e6] : ['kB', 1e3];
  return `${(before / div).toFixed(1)} → ${(after / div).toFixed(1)} ${unit}`;
}
const BATCH = 8;

const paramsSchema = defineParams({
  calibrationImages: Type.Integer({ minimum: 1, maximum: 10000, default: 64, description: 'Training images whose activation ranges set the int8 scales.' }),
  checkImages: Type.Integer({
    minimum: 1,
    maximum: 1000,
    default: 16,
    description: 'Other training images on which int8 and float features are compared before the model is accepted.',
  }),
  seed: Type.Integer({ minimum: 0, maximum: 4294967295, default: 0, description: 'Seed of the image sample.' }),
  minCosine: Type.Number({
    minimum: 0,
    maximum: 1,
    default: 0.98,
    description: 'The least mean cosine similarity of int8 and float features on the check images; below it the stage fails.',
  }),
});

export const quantizeStep = defineStep<Static<typeof paramsSchema>>({
  type: 'backbone.quantize',
  version: 1,
  description:
    "Static int8 quantization of the frozen float backbone (onnxruntime's QDQ format, run as QLinearConv on the CPU), calibrated on a seeded sample of training images; refused for graphs it cannot quantize.",
  inputs: {
    model: { description: 'the backbone.freeze stage (a float32 feature model)', kind: featureModelKind.name },
    dataset: { description: 'the images.dataset stage (calibration images come from its training split)', kind: datasetManifestKind.name },
    transform: { description: 'the images.transform stage (calibration images are preprocessed as features.extract does)', kind: transformKind.name },
  },
  // The same kind as backbone.freeze's: features.extract and export.model take either.
  produces: featureModelKind.name,
  paramsSchema,

  async run(ctx, params, inputs) {
    const modelInput = inputs.model!;
    const freeze = featureModelValue(modelInput);
    const manifest = await readDatasetManifest(inputs.dataset!);
    const spec = await readTransform(inputs.transform!);
    const size = fixedOutputSize(spec);
    if (!size) throw new StepFailure('calibration needs images of one fixed size: give the transform stage a centerCrop (or a fixed resize).');

    const train = manifest.images.filter((image) => image.split === 'train');
    const wanted = params.calibrationImages + params.checkImages;
    if (train.length < 2) throw new StepFailure(`calibration needs training images; the dataset has ${train.length}.`);
    const sample = shuffleInPlace([...train], createRng(params.seed));
    const perImage = 3 * size.width * size.height;
    const dims = (n: number) => (spec.layout === 'NCHW' ? [n, 3, size.height, size.width] : [n, size.height, size.width, 3]);
    const timer = new PhaseTimer();
    const tensors: Float32Array[] = [];
    // The decoder only when the stage runs: a cached run never loads it.
    const { loadImageTensorInto } = await import('../images/preprocess.js');
    ctx.progress(0, wanted, 'images');
    await timer.time('decode', async () => {
      for (const image of sample) {
        if (tensors.length === wanted) break;
        ctx.signal.throwIfAborted();
        const tensor = new Float32Array(perImage);
        try {
          await loadImageTensorInto(image.path, spec, tensor, 0);
        } catch (e) {
          ctx.warn(`calibration skips ${image.path}: ${(e as Error).message}`);
          continue;
        }
        tensors.push(tensor);
        ctx.progress(tensors.length, wanted, 'images');
      }
    });
    // With few training images, fewer check images: calibration comes first.
    const checkCount = Math.min(params.checkImages, Math.max(1, tensors.length - params.calibrationImages), tensors.length - 1);
    if (checkCount < 1) throw new StepFailure(`only ${tensors.length} training image(s) could be decoded; calibration needs at least 2.`);
    const batches = (list: Float32Array[]): CalibrationBatch[] => {
      const out: CalibrationBatch[] = [];
      for (let i = 0; i < list.length; i += BATCH) {
        const part = list.slice(i, i + BATCH);
        const data = new Float32Array(part.length * perImage);
        part.forEach((t, k) => data.set(t, k * perImage));
        out.push({ data, dims: dims(part.length) });
      }
      return out;
    };
    const calibration = batches(tensors.slice(0, tensors.length - checkCount));
    const check = batches(tensors.slice(tensors.length - checkCount));

    const bytes = await timer.time('read', () => readFile(featureModelPath(modelInput)));
    // Refusals are OnnxModelError, an expected failure with its reason: the stage fails with the message.
    const q = await quantizeModel(bytes, {
      source: `the ${modelInput.stage} model`,
      calibration,
      check,
      minCosine: params.minCosine,
      intraOpThreads: os.availableParallelism(),
      spinning: spinningAlone(),
      timer,
    });
    const counts = Object.entries(q.quantizedNodes).map(([op, n]) => `${n} ${op}`).join(', ');
    ctx.log(
      `int8: ${counts}; ${q.perChannel ? 'per-channel' : 'per-tensor'} weights; ${megabytes(bytes.length, q.bytes.length)}; ` +
        `calibrated on ${tensors.length - checkCount} images; features agree with float at cosine ${q.agreement.mean.toFixed(4)} (min ${q.agreement.min.toFixed(4)}) on ${q.agreement.images} others`,
    );
    ctx.log(`time: ${timer.summary()}`);
    for (const kept of q.keptFloat.slice(0, 10)) ctx.warn(`left in float: ${kept.node}, because ${kept.reason}`);
    const value: QuantizeValue = {
      ...freeze,
      quantization: {
        quantizedNodes: q.quantizedNodes,
        keptFloat: q.keptFloat.length,
        perChannel: q.perChannel,
        calibrationImages: tensors.length - checkCount,
        cosineMean: q.agreement.mean,
        cosineMin: q.agreement.min,
        bytesBefore: bytes.length,
        bytesAfter: q.bytes.length,
      },
    };
    return {
      value: await writeFeatureModel(ctx.outDir, q.bytes, value),
      metrics: { featureWidth: freeze.featureWidth, cosineMean: Number(q.agreement.mean.toFixed(6)), cosineMin: Number(q.agreement.min.toFixed(6)) },
    };
  },
});
