// Deterministic float32 tensors for test models: a linear congruential
// generator per test file, so each file's values do not depend on the others.
import type { TensorInit } from '../../src/onnx/builder.js';

export function seededTensors(seed: number) {
  /** Deterministic values in [-1, 1). */
  const randoms = (n: number): Float32Array =>
    Float32Array.from({ length: n }, () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return (seed / 2 ** 31) * 2 - 1;
    });
  const floats = (name: string, dims: number[]): TensorInit => ({
    name,
    type: 'float32',
    dims,
    data: randoms(dims.reduce((a, b) => a * b, 1)),
  });
  return { randoms, floats };
}
