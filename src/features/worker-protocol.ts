// Messages between the extractor (main thread) and an inference worker.
// Batch buffers travel as transferred ArrayBuffers, never copied.
import type { SessionSettings } from '../onnx/runtime.js';

/** One tensor input or output as the session describes it. */
export interface TensorInfo {
  name: string;
  /** onnxruntime type name, e.g. 'float32'; undefined for non-tensor values. */
  type: string | undefined;
  /** A number is a fixed size, a string a symbolic one (e.g. 'batch_size'). */
  shape: Array<number | string>;
}

export interface ModelInfo {
  inputs: TensorInfo[];
  outputs: TensorInfo[];
}

export interface InitRequest {
  kind: 'init';
  model: string | Uint8Array;
  /** How error messages name the model. */
  modelLabel: string;
  settings: SessionSettings;
}

export interface RunRequest {
  kind: 'run';
  id: number;
  inputName: string;
  outputName: string;
  /** Holds `rows` images one after another (it may be larger than needed). */
  buffer: ArrayBuffer;
  /** Full input shape, batch dimension included. */
  shape: number[];
}

export type WorkerRequest = InitRequest | RunRequest;

export type WorkerReply =
  | { kind: 'ready'; info: ModelInfo }
  | { kind: 'init-failed'; message: string; cuda: boolean }
  | {
      kind: 'result';
      id: number;
      /** The request's buffer, handed back for reuse. */
      buffer: ArrayBuffer;
      features: Float32Array;
      /** Output shape, batch dimension included. */
      shape: number[];
    }
  | { kind: 'run-failed'; id: number; message: string; buffer: ArrayBuffer };
