// Reads a model's input and output names, types and shapes from an onnxruntime
// session (its inputMetadata/outputMetadata), so callers need not guess them.
import { InferencePool } from './inference-pool.js';
import type { Device } from '../onnx/runtime.js';
import type { ModelInfo, TensorInfo } from './worker-protocol.js';

export type { ModelInfo, TensorInfo };

/**
 * Opens the model in a short-lived worker (loading a large model is synchronous
 * native work) and returns what its session says about inputs and outputs.
 */
export async function readModelInfo(model: string | Uint8Array, opts: { device?: Device } = {}): Promise<ModelInfo> {
  const pool = new InferencePool({
    model,
    modelLabel: modelLabel(model),
    settings: { device: opts.device ?? 'cpu', intraOpThreads: 1, spinning: false },
    workers: 1,
  });
  try {
    return await pool.ready;
  } finally {
    await pool.close();
  }
}

export function modelLabel(model: string | Uint8Array): string {
  return typeof model === 'string' ? `"${model}"` : `the in-memory model (${model.byteLength} bytes)`;
}

/** Per-image input shape (batch dimension dropped), when the model fixes every dimension. */
export function fixedImageShape(input: TensorInfo): number[] | undefined {
  const rest = input.shape.slice(1);
  return rest.every((d): d is number => typeof d === 'number' && d > 0) ? rest : undefined;
}
