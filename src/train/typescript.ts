// The plain TypeScript engine: forward pass, back-propagation and optimiser
// update in typed-array loops, written independently of the ONNX graph. For
// small heads (below ~1,700 multiply-adds per sample, or a two-class linear
// head over up to ~1,000 features; see engine-choice.ts) it beats a
// session.run per batch, whose fixed cost dwarfs the arithmetic.
//
// Precision: parameters, optimiser state, activations and all sums are
// float64 (JavaScript's native number; float32 would need Math.fround at
// every step and be slower). Only the result is rounded to float32. Against
// the ONNX engine's float64 build, epoch losses agree to ~1e-15 relative
// (tests assert 1e-12); against its float32 build to ~1e-6 (tests assert
// 1e-5), the difference being float32 rounding in the graph.
import type { FeatureSplit } from './data.js';
import type { EngineSetup, EvalOutput, StepInput, StepOutput, TrainEngine } from './engine.js';
import type { HeadWeights } from './head.js';
import { binaryLogitsF32, binaryWeightGradF32, denseF32, denseF64, inputGrad, weightGradF32, weightGradF64 } from './kernels.js';

interface Layer {
  I: number;
  O: number;
  W: Float64Array;
  b: Float64Array;
  gW: Float64Array;
  gb: Float64Array;
  /** Adam first/second moments, or SGD momentum buffers (in `m`). */
  mW: Float64Array;
  mb: Float64Array;
  vW: Float64Array;
  vb: Float64Array;
  /** Pre-activation and output (after ReLU and dropout) of each row, hidden layers only. */
  z: Float64Array;
  h: Float64Array;
  /** Gradient of the loss with respect to z. */
  dz: Float64Array;
  /** Start of each row in h (i·O), the form the kernels take. */
  hOffsets: Int32Array;
}

export class TypeScriptEngine implements TrainEngine {
  readonly name = 'typescript' as const;
  readonly device = 'cpu' as const;
  private readonly layers: Layer[];
  private readonly offsets: Int32Array;
  private readonly capacity: number;
  private readonly classes: number;
  /** A linear two-class head takes the half-cost path of binaryLogitsF32/binaryWeightGradF32. */
  private readonly binaryLinear: boolean;
  private readonly diff: Float64Array;

  constructor(private readonly setup: EngineSetup) {
    const { widths, initial } = setup;
    this.capacity = Math.max(setup.batchSize, 256);
    this.offsets = new Int32Array(this.capacity);
    this.classes = widths[widths.length - 1]!;
    this.binaryLinear = widths.length === 2 && this.classes === 2;
    this.diff = new Float64Array(this.binaryLinear ? widths[0]! : 0);
    const rows = this.capacity;
    this.layers = initial.layers.map((l, index) => {
      if (l.inFeatures !== widths[index] || l.outFeatures !== widths[index + 1])
        throw new RangeError(`initial weights of layer ${index} are ${l.outFeatures}×${l.inFeatures}, expected ${widths[index + 1]}×${widths[index]}`);
      const size = l.inFeatures * l.outFeatures;
      const optimizerState = setup.optimizer.optimizer !== 'sgd' || setup.optimizer.momentum > 0;
      const adam = setup.optimizer.optimizer !== 'sgd';
      return {
        I: l.inFeatures,
        O: l.outFeatures,
        W: Float64Array.from(l.weight),
        b: Float64Array.from(l.bias),
        gW: new Float64Array(size),
        gb: new Float64Array(l.outFeatures),
        mW: new Float64Array(optimizerState ? size : 0),
        mb: new Float64Array(optimizerState ? l.outFeatures : 0),
        vW: new Float64Array(adam ? size : 0),
        vb: new Float64Array(adam ? l.outFeatures : 0),
        z: new Float64Array(rows * l.outFeatures),
        h: new Float64Array(rows * l.outFeatures),
        dz: new Float64Array(rows * l.outFeatures),
        hOffsets: Int32Array.from({ length: rows }, (_, i) => i * l.outFeatures),
      };
    });
  }

  /**
   * Forward pass over `n` rows whose feature offsets are in this.offsets;
   * logits end in the last layer's z (for a linear two-class head, shifted so
   * that logit 0 is 0: softmax and argmax are unchanged).
   */
  private forward(features: Float32Array, n: number, keep: readonly Uint8Array[]): void {
    const scale = 1 / (1 - this.setup.dropout);
    for (let l = 0; l < this.layers.length; l++) {
      const layer = this.layers[l]!;
      if (this.binaryLinear) binaryLogitsF32(features, this.offsets, n, layer.W, layer.b, layer.I, layer.z, this.diff);
      else if (l === 0) denseF32(features, this.offsets, n, layer.W, layer.b, layer.I, layer.O, layer.z);
      else {
        const prev = this.layers[l - 1]!;
        denseF64(prev.h, prev.hOffsets, n, layer.W, layer.b, layer.I, layer.O, layer.z);
      }
      if (l === this.layers.length - 1) break;
      const { z, h } = layer;
      const mask = keep[l];
      const size = n * layer.O;
      for (let j = 0; j < size; j++) {
        const v = z[j]!;
        h[j] = v > 0 ? (mask === undefined ? v : mask[j] ? v * scale : 0) : 0;
      }
    }
  }

  private setOffsets(split: FeatureSplit, rows: ArrayLike<number>, n: number): void {
    for (let i = 0; i < n; i++) this.offsets[i] = rows[i]! * split.width;
  }

  /**
   * Loss terms of the last forward pass. When `gradient` is set, also writes
   * d(loss)/d(logits) into the last layer's dz, for the batch's weighted mean loss.
   */
  private lossAndLogitGrad(split: FeatureSplit, rows: ArrayLike<number>, n: number, gradient: boolean): EvalOutput {
    const C = this.classes;
    const last = this.layers[this.layers.length - 1]!;
    const logits = last.z;
    const d = last.dz;
    const cw = this.setup.classWeights;
    let lossSum = 0;
    let weightSum = 0;
    let correct = 0;
    for (let i = 0; i < n; i++) {
      const y = split.labels[rows[i]!]!;
      const base = i * C;
      let max = logits[base]!;
      let argmax = 0;
      for (let c = 1; c < C; c++) {
        const v = logits[base + c]!;
        if (v > max) {
          max = v;
          argmax = c;
        }
      }
      let sumExp = 0;
      for (let c = 0; c < C; c++) sumExp += Math.exp(logits[base + c]! - max);
      const logSum = Math.log(sumExp);
      const w = cw[y]!;
      // −log softmax(z)_y = max + log Σ exp(z − max) − z_y
      lossSum += w * -(logits[base + y]! - max - logSum);
      weightSum += w;
      if (argmax === y) correct++;
      if (gradient) for (let c = 0; c < C; c++) d[base + c] = Math.exp(logits[base + c]! - max - logSum);
    }
    if (gradient) {
      // d(Σ w·nll / Σ w)/dz = (softmax − onehot)·w / Σ w
      for (let i = 0; i < n; i++) {
        const y = split.labels[rows[i]!]!;
        const coef = cw[y]! / weightSum;
        const base = i * C;
        for (let c = 0; c < C; c++) d[base + c] = (d[base + c]! - (c === y ? 1 : 0)) * coef;
      }
    }
    return { lossSum, weightSum, correct, count: n };
  }

  private backward(features: Float32Array, n: number, keep: readonly Uint8Array[]): void {
    const scale = 1 / (1 - this.setup.dropout);
    for (let l = this.layers.length - 1; l >= 0; l--) {
      const layer = this.layers[l]!;
      if (this.binaryLinear) binaryWeightGradF32(features, this.offsets, n, layer.dz, layer.I, layer.gW, layer.gb);
      else if (l === 0) weightGradF32(features, this.offsets, n, layer.dz, layer.I, layer.O, layer.gW, layer.gb);
      else {
        const prev = this.layers[l - 1]!;
        weightGradF64(prev.h, prev.hOffsets, n, layer.dz, layer.I, layer.O, layer.gW, layer.gb);
        // Into the previous layer: through W, then dropout's mask, then ReLU.
        inputGrad(layer.dz, n, layer.W, layer.I, layer.O, prev.dz);
        const mask = keep[l - 1];
        const size = n * prev.O;
        const { z, dz } = prev;
        for (let j = 0; j < size; j++) {
          const g = mask === undefined ? dz[j]! : mask[j] ? dz[j]! * scale : 0;
          dz[j] = z[j]! > 0 ? g : 0;
        }
      }
    }
  }

  private update(lr: number, step: number): void {
    const o = this.setup.optimizer;
    const wd = o.weightDecay;
    for (const layer of this.layers) {
      if (o.optimizer === 'sgd') {
        sgd(layer.W, layer.gW, layer.mW, lr, step, wd, o.momentum, o.dampening, o.nesterov);
        sgd(layer.b, layer.gb, layer.mb, lr, step, wd, o.momentum, o.dampening, o.nesterov);
      } else {
        const decoupled = o.optimizer === 'adamw';
        adam(layer.W, layer.gW, layer.mW, layer.vW, lr, step, wd, decoupled, o.betas[0], o.betas[1], o.eps);
        adam(layer.b, layer.gb, layer.mb, layer.vb, lr, step, wd, decoupled, o.betas[0], o.betas[1], o.eps);
      }
    }
  }

  step(split: FeatureSplit, input: StepInput): StepOutput {
    const n = input.rows.length;
    if (n > this.capacity) throw new RangeError(`batch of ${n} exceeds the engine's capacity ${this.capacity}`);
    this.setOffsets(split, input.rows, n);
    this.forward(split.features, n, input.keep);
    const out = this.lossAndLogitGrad(split, input.rows, n, true);
    this.backward(split.features, n, input.keep);
    this.update(input.lr, input.step);
    return { loss: out.lossSum / out.weightSum, correct: out.correct };
  }

  evaluate(split: FeatureSplit): EvalOutput {
    const total: EvalOutput = { lossSum: 0, weightSum: 0, correct: 0, count: 0 };
    for (let start = 0; start < split.indices.length; start += this.capacity) {
      const rows = split.indices.subarray(start, start + this.capacity);
      this.setOffsets(split, rows, rows.length);
      this.forward(split.features, rows.length, []);
      const part = this.lossAndLogitGrad(split, rows, rows.length, false);
      total.lossSum += part.lossSum;
      total.weightSum += part.weightSum;
      total.correct += part.correct;
      total.count += part.count;
    }
    return total;
  }

  /** Logits of rows of a feature array (forward pass without dropout, up to a per-row shift), for prediction. */
  logits(features: Float32Array, width: number, out: Float64Array): void {
    const rows = features.length / width;
    const C = this.classes;
    const last = this.layers[this.layers.length - 1]!;
    for (let start = 0; start < rows; start += this.capacity) {
      const n = Math.min(this.capacity, rows - start);
      for (let i = 0; i < n; i++) this.offsets[i] = (start + i) * width;
      this.forward(features, n, []);
      out.set(last.z.subarray(0, n * C), start * C);
    }
  }

  weights(): HeadWeights {
    return {
      layers: this.layers.map((l) => ({
        weight: Float32Array.from(l.W),
        bias: Float32Array.from(l.b),
        inFeatures: l.I,
        outFeatures: l.O,
      })),
    };
  }

  dispose(): void {}
}

/**
 * PyTorch's Adam/AdamW step for one tensor (torch.optim.Adam, single-tensor
 * path): L2 decay is added to the gradient; AdamW instead shrinks the
 * parameter by lr·decay first.
 */
function adam(
  p: Float64Array, g: Float64Array, m: Float64Array, v: Float64Array,
  lr: number, step: number, weightDecay: number, decoupled: boolean,
  beta1: number, beta2: number, eps: number,
): void {
  const stepSize = lr / (1 - Math.pow(beta1, step));
  const bias2Sqrt = Math.sqrt(1 - Math.pow(beta2, step));
  const l2 = decoupled ? 0 : weightDecay;
  const shrink = decoupled ? 1 - lr * weightDecay : 1;
  for (let j = 0; j < p.length; j++) {
    const grad = l2 === 0 ? g[j]! : g[j]! + l2 * p[j]!;
    const mj = beta1 * m[j]! + (1 - beta1) * grad;
    const vj = beta2 * v[j]! + (1 - beta2) * grad * grad;
    m[j] = mj;
    v[j] = vj;
    const pj = shrink === 1 ? p[j]! : p[j]! * shrink;
    p[j] = pj - stepSize * (mj / (Math.sqrt(vj) / bias2Sqrt + eps));
  }
}

/** PyTorch's SGD step (torch.optim.SGD): the first step's momentum buffer is the gradient itself. */
function sgd(
  p: Float64Array, g: Float64Array, buf: Float64Array,
  lr: number, step: number, weightDecay: number,
  momentum: number, dampening: number, nesterov: boolean,
): void {
  for (let j = 0; j < p.length; j++) {
    let d = weightDecay === 0 ? g[j]! : g[j]! + weightDecay * p[j]!;
    if (momentum !== 0) {
      const b = step === 1 ? d : momentum * buf[j]! + (1 - dampening) * d;
      buf[j] = b;
      d = nesterov ? d + momentum * b : b;
    }
    p[j] = p[j]! - lr * d;
  }
}

/** Logits (up to a per-row shift) of every row of `features` under `weights`, in float64. */
export function typescriptLogits(weights: HeadWeights, features: Float32Array): Float64Array {
  const widths = [weights.layers[0]!.inFeatures, ...weights.layers.map((l) => l.outFeatures)];
  const engine = new TypeScriptEngine({
    widths,
    initial: weights,
    // Forward passes never touch the optimiser; plain SGD allocates no state.
    optimizer: { optimizer: 'sgd', betas: [0.9, 0.999], eps: 1e-8, momentum: 0, dampening: 0, nesterov: false, weightDecay: 0 },
    dropout: 0,
    classWeights: new Float64Array(widths[widths.length - 1]!).fill(1),
    batchSize: 256,
  });
  const out = new Float64Array((features.length / widths[0]!) * widths[widths.length - 1]!);
  engine.logits(features, widths[0]!, out);
  return out;
}
