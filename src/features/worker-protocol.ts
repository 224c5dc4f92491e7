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
  /** What the worker measured and chose, when the init asked it to choose spinning. */
  cost?: InferenceCost;
}

/** One timed run on a blank image, and the settings chosen from it (threads.ts). */
export interface InferenceCost {
  /** CPU time of the whole process per image over the timed run; undefined when the input shape was not fixed. */
  cpuMsPerImage: number | undefined;
  /** Whether inference costs so much more than decoding that it alone sets the pace. */
  inferenceDominates: boolean;
  /** Whether the machine was too busy for spinning to pay (threads.ts, machineBusy). */
  machineBusy: boolean;
  loadAverage: number;
  /** The spinning the session runs with: inference dominates and the machine is not busy. */
  spinning: boolean;
}

export interface InitRequest {
  kind: 'init';
  model: string | Uint8Array;
  /** How error messages name the model. */
  modelLabel: string;
  settings: SessionSettings;
  /**
   * Choose spinning from a timed run instead of taking settings.spinning: the
   * estimated CPU cost of decoding one image, against which inference is weighed.
   */
  chooseSpinning?: { decodeCpuMsPerImage: number; loadAverage: number };
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
