// Calibration for static quantization: the range (min, max) each chosen
// tensor takes when the float model runs on sample inputs. The model is run
// once per batch with those tensors added as graph outputs (onnxruntime's
// MinMax calibration does the same).
import type { InferenceSession } from 'onnxruntime-node';
import { createSession } from './runtime.js';
import { type OnnxModel, OnnxModelError, encodeModel, parseValueInfo } from './model.js';
import { pb } from './protobuf.js';

export interface CalibrationBatch {
  /** The model's input, row-major, float32. */
  data: Float32Array;
  dims: number[];
}

export interface Range {
  min: number;
  max: number;
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

/**
 * Runs `model` (float) on each batch and returns the range of every tensor in
 * `tensors` (graph inputs included). NaN or infinite values are an error:
 * no scale can represent them.
 */
export async function calibrateRanges(
  model: OnnxModel,
  tensors: readonly string[],
  batches: Iterable<CalibrationBatch> | AsyncIterable<CalibrationBatch>,
  intraOpThreads?: number,
): Promise<Map<string, Range>> {
  const inputName = model.graph.inputs[0]!.name;
  const outputs = new Set(model.graph.outputs.map((o) => o.name));
  const probed = tensors.filter((t) => t !== inputName);
  const augmented: OnnxModel = {
    ...model,
    graph: { ...model.graph, outputs: [...model.graph.outputs, ...probed.filter((t) => !outputs.has(t)).map(floatOutput)] },
  };
  const ort = await import('onnxruntime-node');
  let session: InferenceSession;
  try {
    session = await createSession(encodeModel(augmented), { device: 'cpu', intraOpThreads, spinning: false }, `${model.source} for calibration`);
  } catch (e) {
    throw new OnnxModelError(`${model.source} cannot be run by onnxruntime for calibration: ${(e as Error).message.split('\n')[0]}`);
  }
  const ranges = new Map<string, Range>();
  let seen = 0;
  try {
    for await (const batch of batches) {
      seen++;
      if (tensors.includes(inputName)) ranges.set(inputName, widen(ranges.get(inputName), rangeOf(batch.data)));
      let result: InferenceSession.OnnxValueMapType;
      try {
        result = await session.run({ [inputName]: new ort.Tensor('float32', batch.data, batch.dims) }, probed);
      } catch (e) {
        throw new OnnxModelError(
          `${model.source} failed on a calibration batch of shape [${batch.dims.join(', ')}]: ${(e as Error).message.split('\n')[0]}`,
        );
      }
      for (const name of probed) {
        const value = result[name] as { type: string; data: unknown } | undefined;
        if (!value || value.type !== 'float32') continue;
        ranges.set(name, widen(ranges.get(name), rangeOf(value.data as Float32Array)));
      }
    }
  } finally {
    await session.release();
  }
  if (seen === 0) throw new OnnxModelError('calibration needs at least one batch of sample images; none was given.');
  for (const [name, r] of ranges) {
    if (!Number.isFinite(r.min) || !Number.isFinite(r.max)) {
      throw new OnnxModelError(
        `calibrating ${model.source}: tensor "${name}" took non-finite values (${r.min}..${r.max}) on the sample images, ` +
          'which no int8 scale can represent; check the preprocessing, or keep the float model.',
      );
    }
  }
  return ranges;
}
