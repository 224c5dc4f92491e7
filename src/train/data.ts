// Training input: cached feature vectors with their labels, either one array
// with train/validation index lists or separate train and validation arrays.
// Everything is checked once here so the engines' loops can trust it.
import { ExpectedFailure } from '../failure.js';

/** Feature vectors (row-major N×featureWidth) and their class indices. */
export interface LabelledFeatures {
  features: Float32Array;
  labels: Int32Array | readonly number[];
}

interface DataShape {
  /** Width F of one feature vector. */
  featureWidth: number;
  /** Number of classes; labels are 0 … classes-1. */
  classes: number;
}

export type TrainData = DataShape &
  (
    | (LabelledFeatures & { trainIndices: ArrayLike<number>; valIndices?: ArrayLike<number> })
    | { train: LabelledFeatures; val?: LabelledFeatures }
  );

/** One split as the engines see it: rows `indices` of `features`. */
export interface FeatureSplit {
  features: Float32Array;
  labels: Int32Array;
  indices: Int32Array;
  width: number;
}

/**
 * The split's rows copied into one contiguous array, in the split's order; the
 * split itself when its rows already are. A subset that an objective reads on
 * every evaluation is compacted once rather than gathered row by row each time.
 */
export function compactSplit(split: FeatureSplit): FeatureSplit {
  const { indices, width: F } = split;
  const n = indices.length;
  const first = n > 0 ? indices[0]! : 0;
  let contiguous = true;
  for (let i = 1; i < n && contiguous; i++) contiguous = indices[i] === first + i;
  if (contiguous) return split;
  const features = new Float32Array(n * F);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const at = indices[i]! * F;
    features.set(split.features.subarray(at, at + F), i * F);
    labels[i] = split.labels[indices[i]!]!;
  }
  return { features, labels, indices: Int32Array.from({ length: n }, (_, i) => i), width: F };
}

export interface NormalisedData {
  train: FeatureSplit;
  val: FeatureSplit | null;
  featureWidth: number;
  classes: number;
}

export class DataError extends ExpectedFailure {
  override name = 'DataError';
  readonly reason = 'data';
}

/** Labels as an Int32Array, checked to lie in [0, classes). */
export function checkLabels(labels: Int32Array | readonly number[], rows: number, classes: number, what = 'labels'): Int32Array {
  if (labels.length !== rows) throw new DataError(`${what}: ${labels.length} labels for ${rows} feature vectors`);
  const out = labels instanceof Int32Array ? labels : Int32Array.from(labels);
  for (let i = 0; i < out.length; i++) {
    const y = out[i]!;
    if (!(y >= 0 && y < classes) || (!(labels instanceof Int32Array) && !Number.isInteger(labels[i])))
      throw new DataError(`${what}[${i}] is ${labels[i]}, outside the classes 0…${classes - 1}`);
  }
  return out;
}

/** Number of rows in a row-major feature array, checked against the width. */
export function rowCount(features: Float32Array, width: number, what = 'features'): number {
  if (!Number.isInteger(width) || width < 1) throw new DataError(`feature width must be a positive integer, got ${width}`);
  if (features.length % width !== 0)
    throw new DataError(`${what}: ${features.length} values is not a whole number of ${width}-wide vectors`);
  return features.length / width;
}

function checkIndices(indices: ArrayLike<number>, rows: number, what: string): Int32Array {
  const out = Int32Array.from(indices);
  for (let i = 0; i < out.length; i++)
    if (!(out[i]! >= 0 && out[i]! < rows) || out[i] !== indices[i])
      throw new DataError(`${what}[${i}] is ${indices[i]}, not a row index below ${rows}`);
  return out;
}

function wholeSplit(set: LabelledFeatures, width: number, classes: number, what: string): FeatureSplit {
  const rows = rowCount(set.features, width, `${what}.features`);
  const labels = checkLabels(set.labels, rows, classes, `${what}.labels`);
  const indices = new Int32Array(rows);
  for (let i = 0; i < rows; i++) indices[i] = i;
  return { features: set.features, labels, indices, width };
}

export function normaliseData(data: TrainData): NormalisedData {
  const { featureWidth: width, classes } = data;
  if (!Number.isInteger(classes) || classes < 2) throw new DataError(`need at least 2 classes, got ${classes}`);
  let train: FeatureSplit;
  let val: FeatureSplit | null = null;
  if ('train' in data) {
    train = wholeSplit(data.train, width, classes, 'train');
    if (data.val) val = wholeSplit(data.val, width, classes, 'val');
  } else {
    const rows = rowCount(data.features, width);
    const labels = checkLabels(data.labels, rows, classes);
    train = { features: data.features, labels, indices: checkIndices(data.trainIndices, rows, 'trainIndices'), width };
    if (data.valIndices && data.valIndices.length > 0)
      val = { features: data.features, labels, indices: checkIndices(data.valIndices, rows, 'valIndices'), width };
  }
  if (train.indices.length === 0) throw new DataError('the training set is empty');
  if (val && val.indices.length === 0) val = null;
  return { train, val, featureWidth: width, classes };
}

/**
 * Per-class loss weights. 'balanced' follows scikit-learn (and the usual
 * PyTorch recipe): n_samples / (classes × samples of the class), counted on
 * the training split. null means every class weighs 1.
 */
export function resolveClassWeights(spec: 'balanced' | readonly number[] | null, train: FeatureSplit, classes: number): Float64Array {
  if (spec === null) return new Float64Array(classes).fill(1);
  if (spec === 'balanced') {
    const counts = new Float64Array(classes);
    for (const i of train.indices) counts[train.labels[i]!]!++;
    const missing = [...counts.keys()].filter((c) => counts[c] === 0);
    if (missing.length > 0)
      throw new DataError(`classWeights 'balanced' needs every class in the training set; no samples of class ${missing.join(', ')}`);
    return counts.map((n) => train.indices.length / (classes * n));
  }
  if (spec.length !== classes) throw new DataError(`classWeights has ${spec.length} values for ${classes} classes`);
  for (const w of spec) if (!(w > 0 && Number.isFinite(w))) throw new DataError(`classWeights must be positive finite numbers, got ${w}`);
  return Float64Array.from(spec);
}
