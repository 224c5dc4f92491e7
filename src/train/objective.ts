// The full-batch objective of a linear head, for the L-BFGS solver: the
// class-weighted mean cross-entropy over a whole split and its gradient,
// with the parameters as one float64 vector [W row-major (classes × features), b].
// Two implementations of the same arithmetic: TypeScript loops (kernels.ts),
// and an ONNX gradient graph run by onnxruntime in chunks of rows (faster for
// many rows or classes: vectorised, multi-threaded GEMM).
import * as ort from 'onnxruntime-node';
import type { FeatureSplit } from './data.js';
import type { EngineName } from './engine.js';
import { buildGradientGraph, buildEvalGraph, io } from './graph.js';
import { binaryLogitsF32, binaryWeightGradF32, denseF32, weightGradF32 } from './kernels.js';
import { createSession } from '../onnx/runtime.js';
import type { Device } from './spec.js';

export interface SplitScore {
  /** Σ class weight × cross-entropy. */
  lossSum: number;
  weightSum: number;
  correct: number;
  count: number;
}

export interface LinearObjective {
  readonly engine: EngineName;
  /** Writes the gradient of the weighted mean cross-entropy into `grad` and returns that mean. */
  valueAndGradient(params: Float64Array, grad: Float64Array): number | Promise<number>;
  /** Loss terms and correct predictions on another split (no gradient). */
  score(params: Float64Array, split: FeatureSplit): SplitScore | Promise<SplitScore>;
  dispose(): void | Promise<void>;
}

export interface ObjectiveSetup {
  split: FeatureSplit;
  features: number;
  classes: number;
  classWeights: Float64Array;
}

/** Softmax cross-entropy over rows of logits; fills dz with (softmax − onehot)·w when given. */
function crossEntropy(
  logits: Float64Array, rows: number, C: number, labels: Int32Array, indices: Int32Array, cw: Float64Array, dz: Float64Array | null,
): SplitScore {
  let lossSum = 0;
  let weightSum = 0;
  let correct = 0;
  for (let i = 0; i < rows; i++) {
    const y = labels[indices[i]!]!;
    const base = i * C;
    let max = logits[base]!;
    let argmax = 0;
    for (let c = 1; c < C; c++)
      if (logits[base + c]! > max) {
        max = logits[base + c]!;
        argmax = c;
      }
    let sum = 0;
    for (let c = 0; c < C; c++) sum += Math.exp(logits[base + c]! - max);
    const logSum = Math.log(sum);
    const w = cw[y]!;
    lossSum += w * (max + logSum - logits[base + y]!);
    weightSum += w;
    if (argmax === y) correct++;
    if (dz) for (let c = 0; c < C; c++) dz[base + c] = (Math.exp(logits[base + c]! - max - logSum) - (c === y ? 1 : 0)) * w;
  }
  return { lossSum, weightSum, correct, count: rows };
}

export class TypeScriptObjective implements LinearObjective {
  readonly engine = 'typescript' as const;
  private readonly W: Float64Array;
  private readonly b: Float64Array;
  private readonly gW: Float64Array;
  private readonly gb: Float64Array;
  private readonly diff: Float64Array;

  constructor(private readonly setup: ObjectiveSetup) {
    const { features: F, classes: C } = setup;
    this.W = new Float64Array(C * F);
    this.b = new Float64Array(C);
    this.gW = new Float64Array(C * F);
    this.gb = new Float64Array(C);
    this.diff = new Float64Array(F);
  }

  private load(params: Float64Array): void {
    this.W.set(params.subarray(0, this.W.length));
    this.b.set(params.subarray(this.W.length));
  }

  private logits(split: FeatureSplit): { logits: Float64Array; offsets: Int32Array } {
    const { features: F, classes: C } = this.setup;
    const n = split.indices.length;
    const offsets = new Int32Array(n);
    for (let i = 0; i < n; i++) offsets[i] = split.indices[i]! * F;
    const logits = new Float64Array(n * C);
    if (C === 2) binaryLogitsF32(split.features, offsets, n, this.W, this.b, F, logits, this.diff);
    else denseF32(split.features, offsets, n, this.W, this.b, F, C, logits);
    return { logits, offsets };
  }

  valueAndGradient(params: Float64Array, grad: Float64Array): number {
    const { split, features: F, classes: C, classWeights } = this.setup;
    this.load(params);
    if (C === 2) return binaryValueAndGradient(split, F, this.W, this.b, classWeights, this.diff, grad);
    const n = split.indices.length;
    const { logits, offsets } = this.logits(split);
    const dz = logits; // overwritten row by row after its loss is taken
    const out = crossEntropy(logits, n, C, split.labels, split.indices, classWeights, dz);
    if (C === 2) binaryWeightGradF32(split.features, offsets, n, dz, F, this.gW, this.gb);
    else weightGradF32(split.features, offsets, n, dz, F, C, this.gW, this.gb);
    const inv = 1 / out.weightSum;
    for (let j = 0; j < this.gW.length; j++) grad[j] = this.gW[j]! * inv;
    for (let c = 0; c < C; c++) grad[this.gW.length + c] = this.gb[c]! * inv;
    return out.lossSum * inv;
  }

  score(params: Float64Array, split: FeatureSplit): SplitScore {
    this.load(params);
    const { logits } = this.logits(split);
    return crossEntropy(logits, split.indices.length, this.setup.classes, split.labels, split.indices, this.setup.classWeights, null);
  }

  dispose(): void {}
}

/**
 * The two-class case in one pass over the rows: logits differ only by
 * d = (W₁ − W₀)·x + (b₁ − b₀), and the gradient of row i is ±(σ(d) − y)·w·x,
 * so each row is read once for its logit and, still in cache, added into the
 * gradient; four rows share each load of the weight difference and of the
 * gradient (the memory traffic, not the arithmetic, bounds this loop).
 */
function binaryValueAndGradient(
  split: FeatureSplit, F: number, W: Float64Array, b: Float64Array, cw: Float64Array, diff: Float64Array, grad: Float64Array,
): number {
  for (let k = 0; k < F; k++) diff[k] = W[F + k]! - W[k]!;
  const bias = b[1]! - b[0]!;
  const x = split.features;
  const n = split.indices.length;
  // Gradient of W₁ accumulates in grad[F…2F); W₀'s is its negative.
  grad.fill(0);
  let lossSum = 0;
  let weightSum = 0;
  let biasGrad = 0;
  // Per row: −log softmax = softplus(∓d), and d(loss)/d(d) = (σ(d) − y)·w.
  const term = (d: number, y: number, w: number): number => {
    const m = y === 1 ? -d : d; // the margin against the true class
    lossSum += w * (m > 0 ? m + Math.log1p(Math.exp(-m)) : Math.log1p(Math.exp(m)));
    weightSum += w;
    const p = d >= 0 ? 1 / (1 + Math.exp(-d)) : Math.exp(d) / (1 + Math.exp(d));
    const g = (p - y) * w;
    biasGrad += g;
    return g;
  };
  const labels = split.labels;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const ra = split.indices[i]!, rb = split.indices[i + 1]!, rc = split.indices[i + 2]!, rd = split.indices[i + 3]!;
    const xa = ra * F, xb = rb * F, xc = rc * F, xd = rd * F;
    let sa = 0, sb = 0, sc = 0, sd = 0;
    for (let k = 0; k < F; k++) {
      const w = diff[k]!;
      sa += x[xa + k]! * w;
      sb += x[xb + k]! * w;
      sc += x[xc + k]! * w;
      sd += x[xd + k]! * w;
    }
    const ya = labels[ra]!, yb = labels[rb]!, yc = labels[rc]!, yd = labels[rd]!;
    const ga = term(bias + sa, ya, cw[ya]!), gb = term(bias + sb, yb, cw[yb]!);
    const gc = term(bias + sc, yc, cw[yc]!), gd = term(bias + sd, yd, cw[yd]!);
    for (let k = 0; k < F; k++) grad[F + k] += ga * x[xa + k]! + gb * x[xb + k]! + gc * x[xc + k]! + gd * x[xd + k]!;
  }
  for (; i < n; i++) {
    const r = split.indices[i]!;
    const xo = r * F;
    let s = 0;
    for (let k = 0; k < F; k++) s += x[xo + k]! * diff[k]!;
    const y = labels[r]!;
    const g = term(bias + s, y, cw[y]!);
    for (let k = 0; k < F; k++) grad[F + k] += g * x[xo + k]!;
  }
  const inv = 1 / weightSum;
  for (let k = 0; k < F; k++) {
    const v = grad[F + k]! * inv;
    grad[F + k] = v;
    grad[k] = -v;
  }
  grad[2 * F] = -biasGrad * inv;
  grad[2 * F + 1] = biasGrad * inv;
  return lossSum * inv;
}

/** Rows per onnxruntime run: large enough that the per-run cost vanishes, small enough to bound the temporaries. */
const CHUNK_ROWS = 8192;

/** Rows [start, start+n) of a split as a contiguous float32 array (a view when the rows already are). */
function chunkRows(split: FeatureSplit, start: number, n: number, scratch: Float32Array): Float32Array {
  const F = split.width;
  const first = split.indices[start]!;
  let contiguous = true;
  for (let i = 1; i < n && contiguous; i++) contiguous = split.indices[start + i] === first + i;
  if (contiguous) return split.features.subarray(first * F, (first + n) * F);
  for (let i = 0; i < n; i++) {
    const at = split.indices[start + i]! * F;
    scratch.set(split.features.subarray(at, at + F), i * F);
  }
  return scratch.subarray(0, n * F);
}

function labelTensor(split: FeatureSplit, start: number, n: number): ort.Tensor {
  const labels = new BigInt64Array(n);
  for (let i = 0; i < n; i++) labels[i] = BigInt(split.labels[split.indices[start + i]!]!);
  return new ort.Tensor('int64', labels, [n]);
}

export class OnnxObjective implements LinearObjective {
  readonly engine = 'onnx' as const;
  private readonly scratch: Float32Array;
  private readonly classWeights: ort.Tensor;

  private constructor(
    private readonly setup: ObjectiveSetup,
    private readonly gradSession: ort.InferenceSession,
    private readonly evalSession: ort.InferenceSession,
  ) {
    this.scratch = new Float32Array(CHUNK_ROWS * setup.features);
    this.classWeights = new ort.Tensor('float32', Float32Array.from(setup.classWeights), [setup.classes]);
  }

  static async create(setup: ObjectiveSetup, device: Device, threads?: number): Promise<OnnxObjective> {
    const widths = [setup.features, setup.classes];
    const options = { device, intraOpThreads: threads, quiet: true };
    const gradSession = await createSession(buildGradientGraph({ widths, dtype: 'float32' }).model, options, 'the linear head’s gradient graph');
    const evalSession = await createSession(buildEvalGraph({ widths, dtype: 'float32', withLabels: true }).model, options, 'the linear head’s evaluation graph').catch(async (e: unknown) => {
      await gradSession.release();
      throw e;
    });
    return new OnnxObjective(setup, gradSession, evalSession);
  }

  private paramFeeds(params: Float64Array): Record<string, ort.Tensor> {
    const { features: F, classes: C } = this.setup;
    return {
      [io.weight(0)]: new ort.Tensor('float32', Float32Array.from(params.subarray(0, C * F)), [C, F]),
      [io.bias(0)]: new ort.Tensor('float32', Float32Array.from(params.subarray(C * F)), [C]),
    };
  }

  private chunkFeeds(split: FeatureSplit, start: number, n: number): Record<string, ort.Tensor> {
    return {
      [io.features]: new ort.Tensor('float32', chunkRows(split, start, n, this.scratch), [n, split.width]),
      [io.labels]: labelTensor(split, start, n),
      [io.classWeights]: this.classWeights,
    };
  }

  async valueAndGradient(params: Float64Array, grad: Float64Array): Promise<number> {
    const { split, features: F, classes: C } = this.setup;
    const feeds = this.paramFeeds(params);
    grad.fill(0);
    let lossSum = 0;
    let weightSum = 0;
    const gW = io.grad(io.weight(0));
    const gb = io.grad(io.bias(0));
    for (let start = 0; start < split.indices.length; start += CHUNK_ROWS) {
      const n = Math.min(CHUNK_ROWS, split.indices.length - start);
      const out = await this.gradSession.run({ ...feeds, ...this.chunkFeeds(split, start, n) }, [io.lossSum, io.weightSum, gW, gb]);
      lossSum += Number(out[io.lossSum]!.data[0]);
      weightSum += Number(out[io.weightSum]!.data[0]);
      const w = out[gW]!.data as Float32Array;
      const b = out[gb]!.data as Float32Array;
      for (let j = 0; j < C * F; j++) grad[j] += w[j]!;
      for (let c = 0; c < C; c++) grad[C * F + c] += b[c]!;
    }
    const inv = 1 / weightSum;
    for (let j = 0; j < grad.length; j++) grad[j] *= inv;
    return lossSum * inv;
  }

  async score(params: Float64Array, split: FeatureSplit): Promise<SplitScore> {
    const feeds = this.paramFeeds(params);
    const total: SplitScore = { lossSum: 0, weightSum: 0, correct: 0, count: 0 };
    for (let start = 0; start < split.indices.length; start += CHUNK_ROWS) {
      const n = Math.min(CHUNK_ROWS, split.indices.length - start);
      const out = await this.evalSession.run({ ...feeds, ...this.chunkFeeds(split, start, n) }, [io.lossSum, io.weightSum, io.correct]);
      total.lossSum += Number(out[io.lossSum]!.data[0]);
      total.weightSum += Number(out[io.weightSum]!.data[0]);
      total.correct += Number(out[io.correct]!.data[0]);
      total.count += n;
    }
    return total;
  }

  async dispose(): Promise<void> {
    await this.gradSession.release();
    await this.evalSession.release();
  }
}

export async function createObjective(engine: EngineName, setup: ObjectiveSetup, device: Device, threads?: number): Promise<LinearObjective> {
  return engine === 'typescript' ? new TypeScriptObjective(setup) : OnnxObjective.create(setup, device, threads);
}
