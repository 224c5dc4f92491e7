// Calibration for static quantization: the range (min, max) each chosen
// tensor takes when the float model runs on sample inputs. As onnxruntime's
// own MinMax calibrater does, the model gets a ReduceMin and a ReduceMax on
// each chosen tensor, whose scalar results are its extra outputs: the
// activations themselves never leave onnxruntime (on ResNet-50, 70 tensors,
// hundreds of MB per batch, that would otherwise be copied out and scanned
// in JavaScript) and its memory planner can reuse their buffers.
//
// A Relu's output of rank 3 or more gets GlobalMaxPool → ReduceMax instead,
// and 0 as its minimum: onnxruntime's CPU optimizer keeps convolution
// outputs in its blocked (NCHWc) layout, which GlobalMaxPool reads as it is,
// whereas a Reduce needs each tensor reordered back first. On the ResNet-50
// stand-in (49 of its 70 tensors are Relu outputs), with spinning, that took
// calibration from 1.32-1.40× the CPU of plain inference to 1.15-1.18×
// (without spinning the two were within noise of each other, 1.1-1.3×).
// The same session then gives the float model's own outputs for the check
// images, so the float model is loaded and optimised once.
import type { InferenceSession } from 'onnxruntime-node';
import { attr } from './builder.js';
import { createSession } from './runtime.js';
import { type OnnxModel, OnnxModelError, encodeModel, makeNode, parseValueInfo } from './model.js';
import { uniqueName } from './names.js';
import { pb } from './protobuf.js';
import { ShapeFacts } from './shapes.js';

export interface CalibrationBatch {
  /** The model's input, row-major, float32. */
  data: Float32Array;
  dims: number[];
}

export interface Range {
  min: number;
  max: number;
}

export interface CalibratorSettings {
  /** onnxruntime intra-op threads (default: one per core). */
  intraOpThreads?: number;
  /** onnxruntime's spin-waiting (src/features/threads.ts says when it pays). */
  spinning?: boolean;
}

const FLOAT = 1;

/** A float32 graph output of unknown shape (onnxruntime needs only the type). */
function floatOutput(name: string) {
  return parseValueInfo([pb.string(1, name), pb.message(2, [pb.message(1, [pb.varint(1, FLOAT)])])]);
}

function rangeOf(values: Float32Array | readonly number[]): Range {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return { min, max };
}

export function widen(a: Range | undefined, b: Range): Range {
  return a ? { min: Math.min(a.min, b.min), max: Math.max(a.max, b.max) } : b;
}

/** The one scalar a reduction returns (NaN when it returned none). */
function scalar(value: InferenceSession.OnnxValueMapType[string] | undefined): number {
  const data = (value as { data?: unknown } | undefined)?.data;
  return data instanceof Float32Array && data.length === 1 ? data[0]! : NaN;
}

/** The reductions' output names, in order. */
function reductionOutputs(reductions: Map<string, [string | undefined, string]>): string[] {
  return [...reductions.values()].flatMap(([lo, hi]) => (lo ? [lo, hi] : [hi]));
}

/** The float model with a min and a max output per calibrated tensor, run batch by batch. */
export class Calibrator {
  readonly #ranges = new Map<string, Range>();
  #batches = 0;

  private constructor(
    private readonly source: string,
    private readonly session: InferenceSession,
    private readonly inputName: string,
    /** The model's own outputs, as they were when the session was opened. */
    private readonly outputNames: readonly string[],
    private readonly calibrateInput: boolean,
    /** Each probed tensor → the names of its min output (none for a pooled Relu's: it is 0) and max output. */
    private readonly reductions: Map<string, [string | undefined, string]>,
  ) {}

  /** Opens a session on `model` probing `tensors` (graph inputs included). */
  static async open(model: OnnxModel, tensors: readonly string[], settings: CalibratorSettings = {}): Promise<Calibrator> {
    const g = model.graph;
    const inputName = g.inputs[0]!.name;
    const taken = new Set([
      ...g.nodes.flatMap((n) => [...n.inputs, ...n.outputs, n.name]),
      ...g.initializers.map((t) => t.name),
      ...g.inputs.map((v) => v.name),
      ...g.outputs.map((v) => v.name),
    ]);
    const reductions = new Map<string, [string | undefined, string]>();
    const shapes = new ShapeFacts(g);
    const nodes = [];
    const keepdims0 = { keepdims: attr.int(0) };
    for (const t of new Set(tensors)) {
      if (t === inputName) continue;
      const producer = shapes.producer(t);
      // A Relu's output is never below 0, and its minimum is 0 as soon as one value was
      // clipped: the lower bound quantization uses anyway (it widens every range to hold 0).
      const pooled = producer?.opType === 'Relu' && producer.domain === '' && (shapes.rank(t) ?? 0) >= 3;
      const lo = pooled ? undefined : uniqueName(`${t}_calibration_min`, taken);
      const hi = uniqueName(`${t}_calibration_max`, taken);
      reductions.set(t, [lo, hi]);
      if (pooled) {
        const perChannel = uniqueName(`${t}_calibration_channel_max`, taken);
        nodes.push(
          makeNode({ op: 'GlobalMaxPool', name: uniqueName(`${t}_GlobalMaxPool`, taken), inputs: [t], outputs: [perChannel] }),
          makeNode({ op: 'ReduceMax', name: uniqueName(`${t}_ReduceMax`, taken), inputs: [perChannel], outputs: [hi], attrs: keepdims0 }),
        );
        continue;
      }
      // No axes: every axis is reduced, in every opset; keepdims 0 makes a scalar.
      nodes.push(
        makeNode({ op: 'ReduceMin', name: uniqueName(`${t}_ReduceMin`, taken), inputs: [t], outputs: [lo!], attrs: keepdims0 }),
        makeNode({ op: 'ReduceMax', name: uniqueName(`${t}_ReduceMax`, taken), inputs: [t], outputs: [hi], attrs: keepdims0 }),
      );
    }
    const augmented: OnnxModel = {
      ...model,
      graph: { ...g, nodes: [...g.nodes, ...nodes], outputs: [...g.outputs, ...reductionOutputs(reductions).map(floatOutput)] },
    };
    let session: InferenceSession;
    try {
      session = await createSession(
        encodeModel(augmented),
        { device: 'cpu', intraOpThreads: settings.intraOpThreads, spinning: settings.spinning ?? false },
        `${model.source} for calibration`,
      );
    } catch (e) {
      throw new OnnxModelError(`${model.source} cannot be run by onnxruntime for calibration: ${(e as Error).message.split('\n')[0]}`);
    }
    return new Calibrator(model.source, session, inputName, g.outputs.map((o) => o.name), tensors.includes(inputName), reductions);
  }

  #feeds(ort: typeof import('onnxruntime-node'), batch: CalibrationBatch) {
    return { [this.inputName]: new ort.Tensor('float32', batch.data, batch.dims) };
  }

  #failed(batch: CalibrationBatch, e: unknown): OnnxModelError {
    return new OnnxModelError(`${this.source} failed on a calibration batch of shape [${batch.dims.join(', ')}]: ${(e as Error).message.split('\n')[0]}`);
  }

  /** Widens every probed tensor's range with its values on `batch`. */
  async add(batch: CalibrationBatch): Promise<void> {
    const ort = await import('onnxruntime-node');
    this.#batches++;
    if (this.calibrateInput) this.#ranges.set(this.inputName, widen(this.#ranges.get(this.inputName), rangeOf(batch.data)));
    let result: InferenceSession.OnnxValueMapType;
    try {
      result = await this.session.run(this.#feeds(ort, batch), reductionOutputs(this.reductions));
    } catch (e) {
      throw this.#failed(batch, e);
    }
    for (const [name, [lo, hi]] of this.reductions) {
      this.#ranges.set(name, widen(this.#ranges.get(name), { min: lo ? scalar(result[lo]) : 0, max: scalar(result[hi]) }));
    }
  }

  /** The model's own outputs on `batch`, by name (the ranges are not touched). */
  async outputs(batch: CalibrationBatch): Promise<InferenceSession.OnnxValueMapType> {
    const ort = await import('onnxruntime-node');
    try {
      return await this.session.run(this.#feeds(ort, batch), [...this.outputNames]);
    } catch (e) {
      throw this.#failed(batch, e);
    }
  }

  /**
   * The ranges seen so far. NaN or infinite values are an error: no scale can
   * represent them (a NaN is seen when a reduction starts on one, or the whole tensor is).
   */
  ranges(): Map<string, Range> {
    if (this.#batches === 0) throw new OnnxModelError('calibration needs at least one batch of sample images; none was given.');
    for (const [name, r] of this.#ranges) {
      if (!Number.isFinite(r.min) || !Number.isFinite(r.max)) {
        throw new OnnxModelError(
          `calibrating ${this.source}: tensor "${name}" took non-finite values (${r.min}..${r.max}) on the sample images, ` +
            'which no int8 scale can represent; check the preprocessing, or keep the float model.',
        );
      }
    }
    return new Map(this.#ranges);
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

/**
 * Runs `model` (float) on each batch and returns the range of every tensor in
 * `tensors` (graph inputs included). NaN or infinite values are an error.
 */
export async function calibrateRanges(
  model: OnnxModel,
  tensors: readonly string[],
  batches: Iterable<CalibrationBatch> | AsyncIterable<CalibrationBatch>,
  settings: CalibratorSettings = {},
): Promise<Map<string, Range>> {
  const calibrator = await Calibrator.open(model, tensors, settings);
  try {
    for await (const batch of batches) await calibrator.add(batch);
    return calibrator.ranges();
  } finally {
    await calibrator.release();
  }
}
