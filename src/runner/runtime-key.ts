// The runtime builds whose numbers a stage's result depends on: the same
// parameters under another onnxruntime, another libvips (it decodes and
// resizes the images) or another execution provider give other floats, so
// these enter the fingerprint of the stages that use them. A machine with a
// different build then neither serves nor reuses mismatched features.
import { createRequire } from 'node:module';
import { sharpBuild } from '../images/sharp-build.js';
import { resolveDevice } from '../onnx/runtime.js';
import type { Json } from './step.js';

const require = createRequire(import.meta.url);

interface Versions {
  onnxruntime: string;
  sharp: string;
  libvips: string;
  jpeg: string;
}

let versions: Versions | undefined;

function runtimeVersions(): Versions {
  // package.json only: loading onnxruntime's native module would slow every `status`.
  versions ??= { onnxruntime: (require('onnxruntime-node/package.json') as { version: string }).version, ...sharpBuild().versions };
  return versions;
}

/**
 * The execution provider a `device: auto|cpu|cuda` parameter resolves to on
 * this machine, as the stage will resolve it (auto is CUDA only where a CUDA
 * session can actually be made).
 */
export function executionProvider(device: 'auto' | 'cpu' | 'cuda'): Promise<'cpu' | 'cuda'> {
  return resolveDevice(device, () => undefined);
}

/** For stages that run onnxruntime only (training a head on feature vectors). */
export async function onnxRuntimeKey(device: 'auto' | 'cpu' | 'cuda'): Promise<Json> {
  return { onnxruntime: runtimeVersions().onnxruntime, executionProvider: await executionProvider(device) };
}

/** For stages that decode images with libvips and run onnxruntime on them. */
export async function imageRuntimeKey(device: 'auto' | 'cpu' | 'cuda'): Promise<Json> {
  const v = runtimeVersions();
  return { onnxruntime: v.onnxruntime, executionProvider: await executionProvider(device), libvips: v.libvips, sharp: v.sharp, jpeg: v.jpeg };
}
