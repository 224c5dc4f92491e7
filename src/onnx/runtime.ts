// The one owner of onnxruntime sessions: execution providers, session
// settings, and the single error a user sees when CUDA is asked for but the
// provider is missing (with the one install command, src/onnx/cuda-install.ts).
// Every session in tlpipe (training graphs, the backbone's forward pass in its
// worker threads, the probe run of a cut) is created here.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type * as ort from 'onnxruntime-node';
import { ExpectedFailure } from '../failure.js';
import { CUDA_INSTALL_COMMAND } from './cuda-install.js';

export type Device = 'cpu' | 'cuda';

export interface SessionSettings {
  device: Device;
  /** onnxruntime intra-op threads of one session; unset lets onnxruntime decide (one per core). */
  intraOpThreads?: number;
  /**
   * Whether idle intra-op threads busy-wait for the next parallel section. Spinning
   * saves microseconds per operator but burns cores the image decoders need, so the
   * feature extractor turns it off when decoding runs on the same cores. Unset: onnxruntime's default.
   */
  spinning?: boolean;
  /** Keep onnxruntime's own log off stderr (errors still surface as exceptions). */
  quiet?: boolean;
}

/** Thrown when device 'cuda' is asked for but onnxruntime cannot use CUDA; `cause` holds onnxruntime's own error. */
export class CudaUnavailableError extends ExpectedFailure {
  override name = 'CudaUnavailableError';
  readonly reason = 'environment';
  constructor(what: string, cause: unknown) {
    const detail = (cause instanceof Error ? cause.message : String(cause)).split('\n')[0];
    super(
      `The CUDA execution provider is not installed or cannot load (${detail}), so ${what} cannot run on the GPU. ` +
        'To use an NVIDIA GPU (Linux x64 with its driver, CUDA 12 and cuDNN 9), install onnxruntime-node\'s CUDA provider once, ' +
        `with network access (this project's installs run no install scripts): \`${CUDA_INSTALL_COMMAND}\`. ` +
        "Otherwise use device 'cpu'.",
      { cause },
    );
  }
}

const CUDA_PROVIDER_FILE: Partial<Record<NodeJS.Platform, string>> = {
  linux: 'libonnxruntime_providers_cuda.so',
  win32: 'onnxruntime_providers_cuda.dll',
};

/** Where onnxruntime-node keeps the CUDA provider library on this platform, if it has one. */
function cudaProviderPath(): string | undefined {
  const file = CUDA_PROVIDER_FILE[process.platform];
  if (!file) return undefined;
  try {
    const entry = createRequire(import.meta.url).resolve('onnxruntime-node');
    return path.join(path.dirname(entry), '..', 'bin', 'napi-v6', process.platform, process.arch, file);
  } catch {
    return undefined;
  }
}

/**
 * Whether onnxruntime-node's CUDA provider library is on disk: false when it
 * certainly is not, undefined when the package layout is not the expected one.
 * Checked first so a missing provider does not make onnxruntime log a
 * load failure to stderr before we throw our own error.
 */
export function cudaProviderInstalled(): boolean | undefined {
  if (!CUDA_PROVIDER_FILE[process.platform]) return false;
  const file = cudaProviderPath();
  if (!file || !existsSync(path.dirname(file))) return undefined;
  return existsSync(file);
}

let probe: Promise<string | undefined> | undefined;

/** Why no CUDA session can be made in this process, or undefined when one can (tried once, on a one-node model). */
export function cudaUnusableReason(): Promise<string | undefined> {
  probe ??= (async () => {
    const { buildModel } = await import('./builder.js');
    const model = buildModel({
      name: 'cuda-probe',
      opset: 13,
      inputs: [{ name: 'x', type: 'float32', dims: [1, 1] }],
      outputs: [{ name: 'y', type: 'float32', dims: [1, 1] }],
      nodes: [{ op: 'Identity', inputs: ['x'], outputs: ['y'] }],
    });
    try {
      await (await createSession(model, { device: 'cuda', quiet: true }, 'the CUDA probe')).release();
      return undefined;
    } catch (e) {
      const cause = (e as Error).cause;
      return (cause instanceof Error ? cause.message : String(cause ?? (e as Error).message)).split('\n')[0];
    }
  })();
  return probe;
}

/**
 * `auto` is CUDA when its provider is installed and a CUDA session can
 * actually be made here (an installed provider on a machine with no GPU,
 * driver or CUDA libraries cannot); `log` says when it falls back, and why.
 */
export async function resolveDevice(choice: 'auto' | Device, log: (message: string) => void): Promise<Device> {
  if (choice !== 'auto') return choice;
  if (!cudaProviderInstalled()) {
    log('device auto: the CUDA provider of onnxruntime-node is not installed, running on the CPU (see README, "CUDA")');
    return 'cpu';
  }
  const why = await cudaUnusableReason();
  if (why === undefined) return 'cuda';
  log(`device auto: the CUDA provider of onnxruntime-node is installed but cannot run here (${why}), running on the CPU (see README, "CUDA")`);
  return 'cpu';
}

export function sessionOptions(settings: SessionSettings): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: [settings.device],
    graphOptimizationLevel: 'all',
    ...(settings.intraOpThreads ? { intraOpNumThreads: settings.intraOpThreads } : {}),
    ...(settings.quiet ? { logSeverityLevel: 4 as const } : {}),
    ...(settings.spinning !== undefined
      ? {
          // One model, one graph path: inter-op parallelism only adds idle threads.
          interOpNumThreads: 1,
          executionMode: 'sequential' as const,
          extra: { session: { intra_op: { allow_spinning: settings.spinning ? '1' : '0' } } },
        }
      : {}),
  };
}

/**
 * A session for `model` (bytes or a file path). `what` names it in the CUDA
 * error ("the training graph"); other load failures are thrown as onnxruntime gives them.
 */
export async function createSession(model: Uint8Array | string, settings: SessionSettings, what: string): Promise<ort.InferenceSession> {
  if (settings.device === 'cuda' && cudaProviderInstalled() === false) {
    throw new CudaUnavailableError(what, new Error(`onnxruntime-node's CUDA provider is not installed (${cudaProviderPath() ?? `no CUDA build for ${process.platform}`})`));
  }
  const options = sessionOptions(settings);
  // Loaded here, so that choosing a device or reading these types loads no native code.
  const { InferenceSession } = await import('onnxruntime-node');
  try {
    // Two calls because the overloads take a path or bytes, not a union of both.
    return typeof model === 'string' ? await InferenceSession.create(model, options) : await InferenceSession.create(model, options);
  } catch (error) {
    if (settings.device === 'cuda' && isCudaLoadFailure(error)) throw new CudaUnavailableError(what, error);
    throw error;
  }
}

/** A session failure that is the provider's (libraries, driver), not the model's. */
export const isCudaLoadFailure = (error: unknown): boolean => /cuda|provider|shared librar|cudnn|cublas|libcu/i.test(String(error));
