// onnxruntime session settings for the frozen backbone, and the error a user
// sees when the CUDA execution provider is asked for but not installed.
import type { InferenceSession } from 'onnxruntime-node';
import { CUDA_INSTALL_COMMAND } from '../onnx/cuda-install.js';
import { StepFailure } from '../runner/errors.js';

export type Device = 'cpu' | 'cuda';

export interface SessionSettings {
  device: Device;
  /** onnxruntime intra-op threads of one session (the calling thread counts as one). */
  intraOpThreads: number;
  /**
   * Whether idle intra-op threads busy-wait for the next parallel section. Spinning
   * saves microseconds per operator but burns cores the image decoders need, so the
   * extractor turns it off when decoding runs on the same cores.
   */
  spinning: boolean;
}

export function sessionOptions(settings: SessionSettings): InferenceSession.SessionOptions {
  return {
    executionProviders: settings.device === 'cuda' ? ['cuda'] : ['cpu'],
    intraOpNumThreads: settings.intraOpThreads,
    // One model, one graph path: inter-op parallelism only adds idle threads.
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    extra: { session: { intra_op: { allow_spinning: settings.spinning ? '1' : '0' } } },
  };
}

/** Why the CUDA provider failed to load, and how to install it: the user's to fix, so a step failure. */
export class CudaProviderError extends StepFailure {
  constructor(modelLabel: string, cause: unknown) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    super(
      `Could not create a CUDA inference session for ${modelLabel}: the onnxruntime CUDA execution ` +
        `provider is not installed or cannot load (${detail}).\n` +
        `onnxruntime-node downloads its CUDA 12 provider libraries only when asked to at install time; ` +
        `this project's installs run no install scripts so they stay offline. To install it (Linux x64, needs ` +
        `network access, an NVIDIA driver, CUDA 12 and cuDNN 9):\n` +
        `  ${CUDA_INSTALL_COMMAND}\n` +
        `Or run on the CPU (device: 'cpu').`,
    );
    this.cause = cause;
    this.name = 'CudaProviderError';
  }
}
