// Using a trained head: class probabilities for feature vectors, and the
// evaluation report (accuracy, loss, per-class metrics, confusion matrix).
import { checkLabels, rowCount } from './data.js';
import { chooseForwardEngine } from './engine-choice.js';
import { classCount, checkWeights, featureWidth, type HeadWeights } from './head.js';
import { classificationMetrics, classNames, type ClassificationMetrics } from './metrics.js';
import { onnxLogits } from './onnx.js';
import type { Device, EngineChoice } from './spec.js';
import { typescriptLogits } from './typescript.js';

export interface PredictOptions {
  /** 'auto' (default) picks the faster engine for the head's size. */
  engine?: EngineChoice;
  device?: Device;
}

export interface Prediction {
  /** Most probable class of each vector (the first on ties). */
  labels: Int32Array;
  /** Row-major N×classes softmax probabilities. */
  probabilities: Float32Array;
}

export interface Evaluation extends ClassificationMetrics {
  /** Mean cross-entropy (unweighted) of the true classes. */
  loss: number;
  count: number;
}

async function logitsOf(weights: HeadWeights, features: Float32Array, options: PredictOptions): Promise<Float64Array | Float32Array> {
  checkWeights(weights);
  const width = featureWidth(weights);
  const rows = rowCount(features, width);
  const widths = [width, ...weights.layers.map((l) => l.outFeatures)];
  const engine = chooseForwardEngine({ engine: options.engine ?? 'auto', device: options.device ?? 'cpu' }, widths, rows);
  return engine === 'typescript'
    ? typescriptLogits(weights, features)
    : onnxLogits(weights, features, options.device ?? 'cpu');
}

interface RowSoftmax {
  /** log Σ_c exp(z_c − max) + max, i.e. log of the softmax denominator. */
  logSum: number;
  argmax: number;
}

function rowSoftmax(logits: ArrayLike<number>, base: number, C: number): RowSoftmax {
  let max = logits[base]!;
  let argmax = 0;
  for (let c = 1; c < C; c++)
    if (logits[base + c]! > max) {
      max = logits[base + c]!;
      argmax = c;
    }
  let sum = 0;
  for (let c = 0; c < C; c++) sum += Math.exp(logits[base + c]! - max);
  return { logSum: max + Math.log(sum), argmax };
}

export async function predict(weights: HeadWeights, features: Float32Array, options: PredictOptions = {}): Promise<Prediction> {
  const logits = await logitsOf(weights, features, options);
  const C = classCount(weights);
  const N = logits.length / C;
  const labels = new Int32Array(N);
  const probabilities = new Float32Array(N * C);
  for (let i = 0; i < N; i++) {
    const base = i * C;
    const { logSum, argmax } = rowSoftmax(logits, base, C);
    labels[i] = argmax;
    for (let c = 0; c < C; c++) probabilities[base + c] = Math.exp(logits[base + c]! - logSum);
  }
  return { labels, probabilities };
}

export async function evaluate(
  weights: HeadWeights,
  features: Float32Array,
  labels: Int32Array | readonly number[],
  classes: number | readonly string[],
  options: PredictOptions = {},
): Promise<Evaluation> {
  const C = classNames(classes).length;
  if (C !== classCount(weights)) throw new RangeError(`the head has ${classCount(weights)} outputs but ${C} classes were given`);
  const N = rowCount(features, featureWidth(weights));
  const truth = checkLabels(labels, N, C);
  const logits = await logitsOf(weights, features, options);
  const predicted = new Int32Array(N);
  let lossSum = 0;
  for (let i = 0; i < N; i++) {
    const base = i * C;
    const { logSum, argmax } = rowSoftmax(logits, base, C);
    predicted[i] = argmax;
    lossSum += logSum - logits[base + truth[i]!]!;
  }
  return { ...classificationMetrics(truth, predicted, classes), loss: N === 0 ? 0 : lossSum / N, count: N };
}
