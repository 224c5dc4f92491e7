// Feature standardisation: each feature is shifted by its training-split mean
// and divided by its standard deviation before the head sees it, so the same
// recipe (learning rate, regularisation strength) fits backbones whose pooled
// features live on any scale or offset. The head is trained on standardised
// features, then the transform is folded into its first layer
// (W' = W / σ, b' = b − W'·μ), so whatever uses the trained head afterwards
// (evaluation, prediction, the exported ONNX model) sees raw features and needs
// nothing extra. The statistics are kept in the head's artifact for the record.
import { DataError, type FeatureSplit } from './data.js';
import type { HeadWeights } from './head.js';

export interface FeatureStats {
  /** Per-feature mean over the training split. */
  mean: Float64Array;
  /** Per-feature population standard deviation; 1 where a feature is constant (it then only shifts). */
  std: Float64Array;
}

/**
 * Rows (indices into the split's row list) whose feature vector holds NaN or
 * ±Infinity, in order; at most `limit` of them.
 */
export function nonFiniteRows(split: FeatureSplit, limit = Infinity): number[] {
  const F = split.width;
  const bad: number[] = [];
  for (let r = 0; r < split.indices.length && bad.length < limit; r++) {
    const at = split.indices[r]! * F;
    for (let k = 0; k < F; k++) {
      if (!Number.isFinite(split.features[at + k]!)) {
        bad.push(r);
        break;
      }
    }
  }
  return bad;
}

/** Whether every value of the split's rows is finite: their float64 sum is (finite float32 values cannot overflow it). */
function allFinite(split: FeatureSplit): boolean {
  const { features: x, indices, width: F } = split;
  let sum = 0;
  for (let r = 0; r < indices.length; r++) {
    const at = indices[r]! * F;
    for (let k = 0; k < F; k++) sum += x[at + k]!;
  }
  return Number.isFinite(sum);
}

/** Throws DataError naming the first rows with non-finite features. */
export function checkFinite(split: FeatureSplit, what: string): void {
  if (allFinite(split)) return;
  const bad = nonFiniteRows(split, 10);
  if (bad.length) throw new DataError(`${what}: feature vectors ${bad.join(', ')}${bad.length === 10 ? ', …' : ''} contain NaN or infinite values`);
}

/**
 * Mean and standard deviation of each feature over the split's rows, in one
 * float64 pass over values shifted by the first row (the shift keeps the sum
 * of squares from cancelling when a feature's mean dwarfs its spread).
 */
export function featureStats(split: FeatureSplit): FeatureStats {
  const { features: x, indices, width: F } = split;
  const n = indices.length;
  const shift = new Float64Array(F);
  const sum = new Float64Array(F);
  const squares = new Float64Array(F);
  if (n > 0) for (let k = 0; k < F; k++) shift[k] = x[indices[0]! * F + k]!;
  for (let r = 0; r < n; r++) {
    const at = indices[r]! * F;
    for (let k = 0; k < F; k++) {
      const d = x[at + k]! - shift[k]!;
      sum[k] += d;
      squares[k] += d * d;
    }
  }
  const mean = new Float64Array(F);
  const std = new Float64Array(F);
  for (let k = 0; k < F; k++) {
    const m = sum[k]! / n;
    mean[k] = shift[k]! + m;
    const s = Math.sqrt(Math.max(0, squares[k]! / n - m * m));
    // A constant feature (a dead ReLU channel, quantisation) carries nothing;
    // scaling it would divide by zero. scikit-learn's StandardScaler does the same.
    std[k] = s > 1e-12 * Math.max(1, Math.abs(mean[k]!)) ? s : 1;
  }
  return { mean, std };
}

/** The split's rows, standardised, as a new contiguous split (rows 0…n-1 in the split's order). */
export function standardizeSplit(split: FeatureSplit, stats: FeatureStats): FeatureSplit {
  const F = split.width;
  const n = split.indices.length;
  const features = new Float32Array(n * F);
  const labels = new Int32Array(n);
  const { features: x, indices: rows } = split;
  const mean = stats.mean;
  const inv = stats.std.map((s) => 1 / s);
  for (let r = 0; r < n; r++) {
    const src = rows[r]! * F;
    const dst = r * F;
    for (let k = 0; k < F; k++) features[dst + k] = (x[src + k]! - mean[k]!) * inv[k]!;
    labels[r] = split.labels[rows[r]!]!;
  }
  const indices = new Int32Array(n);
  for (let r = 0; r < n; r++) indices[r] = r;
  return { features, labels, indices, width: F };
}

/**
 * Weights that compute on raw features what `weights` computes on
 * standardised ones: only the first layer changes. Computed in float64, then
 * rounded once to float32.
 */
export function foldStandardization(weights: HeadWeights, stats: FeatureStats): HeadWeights {
  const [first, ...rest] = weights.layers;
  if (!first) throw new RangeError('head has no layers');
  const I = first.inFeatures;
  const O = first.outFeatures;
  if (stats.mean.length !== I) throw new RangeError(`standardisation has ${stats.mean.length} features, the head takes ${I}`);
  const weight = new Float32Array(O * I);
  const bias = new Float32Array(O);
  for (let o = 0; o < O; o++) {
    let shift = 0;
    for (let k = 0; k < I; k++) {
      const w = first.weight[o * I + k]! / stats.std[k]!;
      weight[o * I + k] = w;
      shift += w * stats.mean[k]!;
    }
    bias[o] = first.bias[o]! - shift;
  }
  return { layers: [{ weight, bias, inFeatures: I, outFeatures: O }, ...rest.map((l) => ({ ...l, weight: l.weight.slice(), bias: l.bias.slice() }))] };
}

/** The statistics as plain arrays for a JSON header (float32 precision is plenty for the record). */
export function statsRecord(stats: FeatureStats): { mean: number[]; std: number[] } {
  return { mean: Array.from(Float32Array.from(stats.mean)), std: Array.from(Float32Array.from(stats.std)) };
}
