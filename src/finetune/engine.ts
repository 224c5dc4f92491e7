// Runs the fine-tuning graphs with onnxruntime: one session.run per batch for
// the training step (parameters and AdamW state fed back as the tensors the
// previous run returned), chunked forward passes for evaluation.
import * as ort from 'onnxruntime-node';
import { createSession, type Device } from '../onnx/runtime.js';
import type { HeadWeights } from '../train/head.js';
import { type AdamWConfig, buildFinetuneEvalGraph, buildFinetuneTrainGraph, finetuneParams, type FinetuneShape, ftIo, type ParamSpec, stateNames } from './graph.js';
import { elements, type TopNet } from './top.js';

export interface EngineOptions {
  top: TopNet;
  head: HeadWeights;
  device: Device;
  optimizer: AdamWConfig;
  threads?: number;
}

export interface StepRates {
  blockLr: number;
  headLr: number;
  weightDecay: number;
  /** 1-based step count. */
  step: number;
}

export interface EvalResult {
  lossSum: number;
  weightSum: number;
  correct: number;
  count: number;
  predicted: Int32Array;
}

/** All trainable values, by parameter name (float32 copies). */
export type Snapshot = Map<string, Float32Array>;

export const EVAL_ROWS = 256;

export class FinetuneEngine {
  private params = new Map<string, ort.Tensor>();
  private state = new Map<string, ort.Tensor>();
  private readonly specs: ParamSpec[];
  private readonly classWeights: ort.Tensor;

  private constructor(
    private readonly shape: FinetuneShape,
    private readonly optimizer: AdamWConfig,
    private readonly trainSession: ort.InferenceSession,
    private readonly evalSession: ort.InferenceSession,
    initial: Snapshot,
  ) {
    this.specs = finetuneParams(shape);
    const classes = shape.headWidths[shape.headWidths.length - 1]!;
    this.classWeights = new ort.Tensor('float32', new Float32Array(classes).fill(1), [classes]);
    this.load(initial);
  }

  static async create(options: EngineOptions): Promise<FinetuneEngine> {
    const { top, head } = options;
    const featureWidth = head.layers[0]!.inFeatures;
    const shape: FinetuneShape = { top, headWidths: [featureWidth, ...head.layers.map((l) => l.outFeatures)], dtype: 'float32' };
    const settings = { device: options.device, intraOpThreads: options.threads, quiet: true };
    const train = await createSession(buildFinetuneTrainGraph({ ...shape, optimizer: options.optimizer }).model, settings, 'the fine-tuning graph');
    const evaluate = await createSession(buildFinetuneEvalGraph({ ...shape, withLabels: true }).model, settings, 'the fine-tuning graph').catch(async (e) => {
      await train.release();
      throw e;
    });
    return new FinetuneEngine(shape, options.optimizer, train, evaluate, initialSnapshot(top, head));
  }

  /** Sets every parameter and clears the optimiser state. */
  load(snapshot: Snapshot): void {
    for (const spec of this.specs) {
      const data = snapshot.get(spec.name);
      if (!data || data.length !== elements(spec.dims)) throw new RangeError(`no value of ${elements(spec.dims)} for parameter ${spec.name}`);
      this.params.set(spec.name, new ort.Tensor('float32', data.slice(), spec.dims));
      for (const s of stateNames(spec.name)) this.state.set(s, new ort.Tensor('float32', new Float32Array(data.length), spec.dims));
    }
  }

  snapshot(): Snapshot {
    return new Map([...this.params].map(([name, t]) => [name, Float32Array.from(t.data as Float32Array)]));
  }

  private labelTensor(labels: Int32Array, n: number): ort.Tensor {
    return new ort.Tensor('int64', BigInt64Array.from(labels.subarray(0, n), (l) => BigInt(l)), [n]);
  }

  async step(x: Float32Array, labels: Int32Array, n: number, rates: StepRates): Promise<{ loss: number; correct: number }> {
    const [beta1, beta2] = this.optimizer.betas;
    const scalar = (v: number) => new ort.Tensor('float32', Float32Array.of(v), []);
    const correction = 1 - Math.pow(beta1, rates.step);
    const feeds: Record<string, ort.Tensor> = {
      [ftIo.activations]: new ort.Tensor('float32', x.subarray(0, n * elements(this.shape.top.inputShape)), [n, elements(this.shape.top.inputShape)]),
      [ftIo.labels]: this.labelTensor(labels, n),
      [ftIo.classWeights]: this.classWeights,
      [ftIo.stepSize('blocks')]: scalar(rates.blockLr / correction),
      [ftIo.stepSize('head')]: scalar(rates.headLr / correction),
      [ftIo.decay('blocks')]: scalar(1 - rates.blockLr * rates.weightDecay),
      [ftIo.decay('head')]: scalar(1 - rates.headLr * rates.weightDecay),
      [ftIo.bias2Sqrt]: scalar(Math.sqrt(1 - Math.pow(beta2, rates.step))),
    };
    for (const [name, t] of this.params) feeds[name] = t;
    for (const [name, t] of this.state) feeds[name] = t;
    const out = await this.trainSession.run(feeds);
    for (const name of this.params.keys()) this.params.set(name, out[ftIo.next(name)] as ort.Tensor);
    for (const name of this.state.keys()) this.state.set(name, out[ftIo.next(name)] as ort.Tensor);
    return { loss: Number(out[ftIo.loss]!.data[0]), correct: Number(out[ftIo.correct]!.data[0]) };
  }

  /** Loss terms and predictions over rows fetched chunk by chunk. */
  async evaluate(rows: Int32Array, labels: Int32Array, fetch: (rows: Int32Array, out: Float32Array) => Promise<void>): Promise<EvalResult> {
    const W = elements(this.shape.top.inputShape);
    const buffer = new Float32Array(EVAL_ROWS * W);
    const result: EvalResult = { lossSum: 0, weightSum: 0, correct: 0, count: 0, predicted: new Int32Array(rows.length) };
    for (let start = 0; start < rows.length; start += EVAL_ROWS) {
      const chunk = rows.subarray(start, start + EVAL_ROWS);
      const n = chunk.length;
      await fetch(chunk, buffer);
      const feeds: Record<string, ort.Tensor> = {
        [ftIo.activations]: new ort.Tensor('float32', buffer.subarray(0, n * W), [n, W]),
        [ftIo.labels]: this.labelTensor(labels.subarray(start, start + n), n),
        [ftIo.classWeights]: this.classWeights,
      };
      for (const [name, t] of this.params) feeds[name] = t;
      const out = await this.evalSession.run(feeds, [ftIo.lossSum, ftIo.weightSum, ftIo.correct, ftIo.predicted]);
      result.lossSum += Number(out[ftIo.lossSum]!.data[0]);
      result.weightSum += Number(out[ftIo.weightSum]!.data[0]);
      result.correct += Number(out[ftIo.correct]!.data[0]);
      result.count += n;
      const predicted = out[ftIo.predicted]!.data as BigInt64Array;
      for (let i = 0; i < n; i++) result.predicted[start + i] = Number(predicted[i]);
    }
    return result;
  }

  async dispose(): Promise<void> {
    await this.trainSession.release();
    await this.evalSession.release();
  }
}

export function initialSnapshot(top: TopNet, head: HeadWeights): Snapshot {
  const s: Snapshot = new Map(top.params.map((p) => [p.name, p.data]));
  head.layers.forEach((layer, l) => {
    s.set(ftIo.headWeight(l), layer.weight);
    s.set(ftIo.headBias(l), layer.bias);
  });
  return s;
}

/** The top with the snapshot's parameter values. */
export function topOf(top: TopNet, snapshot: Snapshot): TopNet {
  return { ...top, params: top.params.map((p) => ({ ...p, data: snapshot.get(p.name)! })) };
}

export function headOf(head: HeadWeights, snapshot: Snapshot): HeadWeights {
  return { layers: head.layers.map((layer, l) => ({ ...layer, weight: snapshot.get(ftIo.headWeight(l))!, bias: snapshot.get(ftIo.headBias(l))! })) };
}
