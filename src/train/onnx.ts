// The ONNX engine: drives the training graph with onnxruntime-node, one
// session.run per batch. Parameters and optimiser state stay as the
// ort.Tensor objects each run returns and are fed straight back to the next
// run, so JavaScript never copies them between steps. (onnxruntime-node has
// no device-resident outputs for CUDA, so on the GPU each run still moves the
// parameters and optimiser state between host and device; for a head that is
// a few hundred kilobytes at most.)
import * as ort from 'onnxruntime-node';
import { createSession } from '../onnx/runtime.js';
import type { FeatureSplit } from './data.js';
import { EVAL_CHUNK_ROWS, type EngineSetup, type EvalOutput, type StepInput, type StepOutput, type TrainEngine } from './engine.js';
import { buildEvalGraph, buildTrainGraph, io, parameterNames, scalarInputNames, stateNames, type GraphDtype } from './graph.js';
import type { HeadWeights } from './head.js';
import type { Device } from './spec.js';

/** A session for one of the training library's graphs (on the CPU these load quietly; CUDA failures get the one CUDA error). */
function graphSession(model: Uint8Array, device: Device, threads?: number): Promise<ort.InferenceSession> {
  return createSession(model, { device, intraOpThreads: threads, quiet: true }, 'the training graph');
}

type FloatArray = Float32Array | Float64Array;

export function allocate(dtype: GraphDtype, length: number): FloatArray {
  return dtype === 'float64' ? new Float64Array(length) : new Float32Array(length);
}

export function tensor(dtype: GraphDtype, data: FloatArray | readonly number[], dims: number[]): ort.Tensor {
  const array = data instanceof Float32Array || data instanceof Float64Array ? data : dtype === 'float64' ? Float64Array.from(data) : Float32Array.from(data);
  return new ort.Tensor(dtype, array, dims);
}

export function scalar(dtype: GraphDtype, value: number): ort.Tensor {
  return new ort.Tensor(dtype, dtype === 'float64' ? Float64Array.of(value) : Float32Array.of(value), []);
}

/** Copies rows of a float32 feature array into a dense batch buffer (converting to float64 if needed). */
export function gatherRows(split: { features: Float32Array; width: number }, rows: ArrayLike<number>, n: number, out: FloatArray): void {
  const F = split.width;
  for (let i = 0; i < n; i++) {
    const start = rows[i]! * F;
    out.set(split.features.subarray(start, start + F), i * F);
  }
}

/**
 * Below this many multiply-adds per run, one intra-op thread is faster: the
 * thread pool's hand-offs (and its spin-waiting, on a busy machine) cost more
 * than the split work saves. Measured on the 2-core build machine: a linear
 * 1280→2 head at batch 64 ran 9.9 µs/sample with 1 thread vs 14.6 with 2;
 * even a 1280→1024→10 MLP ran 477 vs 1253 µs/sample there.
 */
const SINGLE_THREAD_MACS_PER_RUN = 64e6;

function defaultThreads(widths: readonly number[], batchSize: number): number | undefined {
  let macs = 0;
  for (let l = 0; l + 1 < widths.length; l++) macs += 3 * widths[l]! * widths[l + 1]!;
  return macs * batchSize < SINGLE_THREAD_MACS_PER_RUN ? 1 : undefined;
}

export interface OnnxEngineOptions {
  device: Device;
  /** 'float64' builds the float64 graph (slower; for checking against references). */
  dtype?: GraphDtype;
  /** onnxruntime intra-op threads; default: 1 for small heads, else one per core. */
  threads?: number;
}

export class OnnxEngine implements TrainEngine {
  readonly name = 'onnx' as const;
  private readonly params = new Map<string, ort.Tensor>();
  private readonly state = new Map<string, ort.Tensor>();
  private readonly batch: FloatArray;
  private readonly evalBatch: FloatArray;
  private readonly classWeights: ort.Tensor;
  private readonly paramNames: string[];

  private constructor(
    private readonly setup: EngineSetup,
    readonly device: Device,
    private readonly dtype: GraphDtype,
    private readonly trainSession: ort.InferenceSession,
    private readonly evalSession: ort.InferenceSession,
  ) {
    const { widths, initial, optimizer } = setup;
    const F = widths[0]!;
    this.batch = allocate(dtype, setup.batchSize * F);
    this.evalBatch = allocate(dtype, EVAL_CHUNK_ROWS * F);
    this.classWeights = tensor(dtype, Array.from(setup.classWeights), [setup.classWeights.length]);
    this.paramNames = parameterNames(initial.layers.length);
    initial.layers.forEach((layer, l) => {
      if (layer.inFeatures !== widths[l] || layer.outFeatures !== widths[l + 1])
        throw new RangeError(`initial weights of layer ${l} are ${layer.outFeatures}×${layer.inFeatures}, expected ${widths[l + 1]}×${widths[l]}`);
      const weightData = dtype === 'float64' ? Float64Array.from(layer.weight) : layer.weight.slice();
      const biasData = dtype === 'float64' ? Float64Array.from(layer.bias) : layer.bias.slice();
      this.params.set(io.weight(l), tensor(dtype, weightData, [layer.outFeatures, layer.inFeatures]));
      this.params.set(io.bias(l), tensor(dtype, biasData, [layer.outFeatures]));
    });
    for (const name of this.paramNames) {
      const p = this.params.get(name)!;
      for (const s of stateNames(optimizer, name)) this.state.set(s, tensor(dtype, allocate(dtype, p.size), [...p.dims]));
    }
  }

  static async create(setup: EngineSetup, options: OnnxEngineOptions): Promise<OnnxEngine> {
    const dtype = options.dtype ?? 'float32';
    const shape = { widths: setup.widths, dtype };
    const trainGraph = buildTrainGraph({ ...shape, optimizer: setup.optimizer, dropout: setup.dropout > 0 });
    const evalGraph = buildEvalGraph({ ...shape, withLabels: true });
    const threads = options.threads ?? defaultThreads(setup.widths, setup.batchSize);
    const trainSession = await graphSession(trainGraph.model, options.device, threads);
    const evalSession = await graphSession(evalGraph.model, options.device, threads).catch(async (error) => {
      await trainSession.release();
      throw error;
    });
    return new OnnxEngine(setup, options.device, dtype, trainSession, evalSession);
  }

  private labels(split: FeatureSplit, rows: ArrayLike<number>, n: number): ort.Tensor {
    const labels = new BigInt64Array(n);
    for (let i = 0; i < n; i++) labels[i] = BigInt(split.labels[rows[i]!]!);
    return new ort.Tensor('int64', labels, [n]);
  }

  private optimizerScalars(lr: number, step: number): Record<string, ort.Tensor> {
    const o = this.setup.optimizer;
    const values: Record<string, number> = {
      [io.stepSize]: lr / (1 - Math.pow(o.betas[0], step)),
      [io.bias2Sqrt]: Math.sqrt(1 - Math.pow(o.betas[1], step)),
      [io.decay]: 1 - lr * o.weightDecay,
      [io.lr]: lr,
      [io.momentumScale]: step === 1 ? 1 : 1 - o.dampening,
    };
    return Object.fromEntries(scalarInputNames(o).map((name) => [name, scalar(this.dtype, values[name]!)]));
  }

  async step(split: FeatureSplit, input: StepInput): Promise<StepOutput> {
    const n = input.rows.length;
    const F = split.width;
    if (n > this.setup.batchSize) throw new RangeError(`batch of ${n} exceeds the engine's batch size ${this.setup.batchSize}`);
    const x = this.batch.subarray(0, n * F);
    gatherRows(split, input.rows, n, x);
    const feeds: Record<string, ort.Tensor> = {
      [io.features]: tensor(this.dtype, x, [n, F]),
      [io.labels]: this.labels(split, input.rows, n),
      [io.classWeights]: this.classWeights,
      ...this.optimizerScalars(input.lr, input.step),
    };
    const scale = 1 / (1 - this.setup.dropout);
    input.keep.forEach((keep, l) => {
      const mask = allocate(this.dtype, keep.length);
      for (let j = 0; j < keep.length; j++) mask[j] = keep[j] ? scale : 0;
      feeds[io.dropoutMask(l)] = tensor(this.dtype, mask, [n, this.setup.widths[l + 1]!]);
    });
    for (const [name, t] of this.params) feeds[name] = t;
    for (const [name, t] of this.state) feeds[name] = t;

    const out = await this.trainSession.run(feeds);
    for (const name of this.params.keys()) this.params.set(name, out[io.next(name)] as ort.Tensor);
    for (const name of this.state.keys()) this.state.set(name, out[io.next(name)] as ort.Tensor);
    return { loss: Number(out[io.loss]!.data[0]), correct: Number(out[io.correct]!.data[0]) };
  }

  async evaluate(split: FeatureSplit): Promise<EvalOutput> {
    const F = split.width;
    const total: EvalOutput = { lossSum: 0, weightSum: 0, correct: 0, count: 0 };
    for (let start = 0; start < split.indices.length; start += EVAL_CHUNK_ROWS) {
      const rows = split.indices.subarray(start, start + EVAL_CHUNK_ROWS);
      const n = rows.length;
      const x = this.evalBatch.subarray(0, n * F);
      gatherRows(split, rows, n, x);
      const feeds: Record<string, ort.Tensor> = {
        [io.features]: tensor(this.dtype, x, [n, F]),
        [io.labels]: this.labels(split, rows, n),
        [io.classWeights]: this.classWeights,
      };
      for (const [name, t] of this.params) feeds[name] = t;
      const out = await this.evalSession.run(feeds, [io.lossSum, io.weightSum, io.correct]);
      total.lossSum += Number(out[io.lossSum]!.data[0]);
      total.weightSum += Number(out[io.weightSum]!.data[0]);
      total.correct += Number(out[io.correct]!.data[0]);
      total.count += n;
    }
    return total;
  }

  weights(): HeadWeights {
    const layers = this.paramNames.length / 2;
    return {
      layers: Array.from({ length: layers }, (_, l) => {
        const w = this.params.get(io.weight(l))!;
        const b = this.params.get(io.bias(l))!;
        return {
          weight: Float32Array.from(w.data as FloatArray),
          bias: Float32Array.from(b.data as FloatArray),
          inFeatures: Number(w.dims[1]),
          outFeatures: Number(w.dims[0]),
        };
      }),
    };
  }

  async dispose(): Promise<void> {
    await this.trainSession.release();
    await this.evalSession.release();
  }
}

/** Logits of every row of `features` under `weights`, from the float32 evaluation graph. */
export async function onnxLogits(weights: HeadWeights, features: Float32Array, device: Device): Promise<Float32Array> {
  const widths = [weights.layers[0]!.inFeatures, ...weights.layers.map((l) => l.outFeatures)];
  const F = widths[0]!;
  const C = widths[widths.length - 1]!;
  const session = await graphSession(buildEvalGraph({ widths, dtype: 'float32', withLabels: false }).model, device);
  try {
    const feeds: Record<string, ort.Tensor> = {};
    weights.layers.forEach((layer, l) => {
      feeds[io.weight(l)] = new ort.Tensor('float32', layer.weight, [layer.outFeatures, layer.inFeatures]);
      feeds[io.bias(l)] = new ort.Tensor('float32', layer.bias, [layer.outFeatures]);
    });
    const rows = features.length / F;
    const out = new Float32Array(rows * C);
    for (let start = 0; start < rows; start += EVAL_CHUNK_ROWS) {
      const n = Math.min(EVAL_CHUNK_ROWS, rows - start);
      feeds[io.features] = new ort.Tensor('float32', features.subarray(start * F, (start + n) * F), [n, F]);
      const result = await session.run(feeds, [io.logits]);
      out.set(result[io.logits]!.data as Float32Array, start * C);
    }
    return out;
  } finally {
    await session.release();
  }
}
