// Which engine 'auto' runs. Both engines do the same arithmetic; what differs
// is the fixed cost per batch (a session.run: building feeds, crossing into
// native code, copying outputs back) against the cost per multiply-add
// (JavaScript loops versus onnxruntime's vectorised, multi-threaded GEMM).
import { EVAL_CHUNK_ROWS, type EngineName } from './engine.js';
import { SpecError, type TrainSpec } from './spec.js';

/**
 * Cost model, fitted to bench/train.ts on the build machine (2 cores):
 *   typescript: TS_NS_PER_MAC per multiply-add;
 *   onnx:       ONNX_US_PER_RUN per batch + ONNX_NS_PER_MAC per multiply-add.
 */
export const TS_NS_PER_MAC = 0.9;
export const ONNX_US_PER_RUN = 150;
export const ONNX_NS_PER_MAC = 0.15;

/** Multiply-adds per training sample: forward, weight gradients, and input gradients below the top layers. */
export function macsPerSample(widths: readonly number[]): number {
  let macs = 0;
  for (let l = 0; l + 1 < widths.length; l++) {
    const layer = widths[l]! * widths[l + 1]!;
    macs += l === 0 ? 2 * layer : 3 * layer;
  }
  return macs;
}

export function estimatedMsPerEpoch(engine: EngineName, widths: readonly number[], samples: number, batchSize: number): number {
  const macs = macsPerSample(widths) * samples;
  if (engine === 'typescript') return (macs * TS_NS_PER_MAC) / 1e6;
  return (Math.ceil(samples / batchSize) * ONNX_US_PER_RUN) / 1e3 + (macs * ONNX_NS_PER_MAC) / 1e6;
}

export interface EngineDecision {
  engine: EngineName;
  reason: string;
}

export function chooseEngine(spec: Pick<TrainSpec, 'engine' | 'device'>, widths: readonly number[], batchSize: number): EngineDecision {
  if (spec.engine === 'typescript') {
    if (spec.device === 'cuda') throw new SpecError("device 'cuda' needs engine 'onnx' (or 'auto'); the typescript engine runs on the CPU only");
    return { engine: 'typescript', reason: 'engine: typescript' };
  }
  if (spec.engine === 'onnx') return { engine: 'onnx', reason: 'engine: onnx' };
  if (spec.device === 'cuda') return { engine: 'onnx', reason: "device 'cuda' runs on the onnx engine" };
  // Per-sample costs make the sample count cancel out of the comparison.
  const ts = estimatedMsPerEpoch('typescript', widths, 1000, batchSize);
  const onnx = estimatedMsPerEpoch('onnx', widths, 1000, batchSize);
  const engine: EngineName = ts <= onnx ? 'typescript' : 'onnx';
  return {
    engine,
    reason: `auto: ${macsPerSample(widths)} multiply-adds per sample, batch ${batchSize}: estimated ${ts.toFixed(1)} ms (typescript) vs ${onnx.toFixed(1)} ms (onnx) per 1000 samples`,
  };
}

/** Engine for a forward pass only (prediction, evaluation), in chunks of EVAL_CHUNK_ROWS. */
export function chooseForwardEngine(spec: Pick<TrainSpec, 'engine' | 'device'>, widths: readonly number[]): EngineName {
  if (spec.engine !== 'auto') return chooseEngine(spec, widths, EVAL_CHUNK_ROWS).engine;
  if (spec.device === 'cuda') return 'onnx';
  let macs = 0;
  for (let l = 0; l + 1 < widths.length; l++) macs += widths[l]! * widths[l + 1]!;
  const ts = macs * EVAL_CHUNK_ROWS * TS_NS_PER_MAC * 1e-3;
  const onnx = ONNX_US_PER_RUN + macs * EVAL_CHUNK_ROWS * ONNX_NS_PER_MAC * 1e-3;
  return ts <= onnx ? 'typescript' : 'onnx';
}
