// Which engine 'auto' runs. Both engines do the same arithmetic; what differs
// is the fixed cost per batch (a session.run: building feeds, crossing into
// native code, copying outputs back) against the cost per multiply-add
// (JavaScript loops versus onnxruntime's vectorised GEMM).
import { EVAL_CHUNK_ROWS, type EngineName } from './engine.js';
import { SpecError, type TrainSpec } from './spec.js';

/*
 * Cost model, fitted to `node dist/bench/train.js crossover` on the build
 * machine (2 shared cores, CPU time per training sample and epoch, batch 64,
 * Adam, onnxruntime with 1 intra-op thread):
 *
 *   head              MAC/sample   typescript   onnx
 *   linear 256→2            1024     0.71 µs   1.70 µs
 *   linear 512→2            2048     1.32 µs   2.36 µs
 *   linear 1280→2           5120     2.97 µs   2.66 µs
 *   linear 128→10           2560     2.50 µs   1.67 µs
 *   linear 512→10          10240     9.00 µs   2.14 µs
 *   linear 1280→10         25600    21.8  µs   4.39 µs
 *   mlp 128→16→2            4192     3.19 µs   2.84 µs
 *   mlp 1280→64→2         164224    111   µs   13.5 µs
 *   mlp 1280→256→2        656896    453   µs   55.8 µs
 *
 * typescript ≈ 0.25 µs + 0.9 ns per multiply-add (half the multiply-adds
 * for a linear two-class head, see kernels.ts); onnx ≈ 105 µs per run +
 * 0.09 ns per multiply-add, plus ~15 ms to create its sessions. So at batch
 * 64 the crossover lies near 1,700 multiply-adds per sample for multi-class
 * heads (e.g. 85 features × 10 classes) and near 1,000 features for a linear
 * two-class head: 1280→2 (MobileNetV2 features, cats vs dogs) is close to a
 * tie (25,000 samples × 5 epochs: typescript 0.39 s, onnx 0.42 s CPU).
 */
export const TS_US_PER_SAMPLE = 0.25;
export const TS_NS_PER_MAC = 0.9;
export const ONNX_SETUP_MS = 15;
export const ONNX_US_PER_RUN = 105;
export const ONNX_NS_PER_MAC = 0.09;

/** Multiply-adds per training sample: forward, weight gradients, and input gradients below the top layers. */
export function macsPerSample(widths: readonly number[]): number {
  let macs = 0;
  for (let l = 0; l + 1 < widths.length; l++) {
    const layer = widths[l]! * widths[l + 1]!;
    macs += l === 0 ? 2 * layer : 3 * layer;
  }
  return macs;
}

/** The TypeScript engine computes a linear two-class head from logit differences, at half the cost. */
function typescriptMacs(widths: readonly number[], macs: number): number {
  return widths.length === 2 && widths[1] === 2 ? macs / 2 : macs;
}

/** Estimated milliseconds to process `samples` training samples (all epochs together). */
export function estimatedTrainingMs(engine: EngineName, widths: readonly number[], samples: number, batchSize: number): number {
  const macs = macsPerSample(widths);
  if (engine === 'typescript') return (samples * (TS_US_PER_SAMPLE * 1e3 + typescriptMacs(widths, macs) * TS_NS_PER_MAC)) / 1e6;
  return ONNX_SETUP_MS + (Math.ceil(samples / batchSize) * ONNX_US_PER_RUN) / 1e3 + (samples * macs * ONNX_NS_PER_MAC) / 1e6;
}

/** Estimated milliseconds per epoch, without the ONNX engine's one-off setup. */
export function estimatedMsPerEpoch(engine: EngineName, widths: readonly number[], samples: number, batchSize: number): number {
  return estimatedTrainingMs(engine, widths, samples, batchSize) - (engine === 'onnx' ? ONNX_SETUP_MS : 0);
}

export interface EngineDecision {
  engine: EngineName;
  reason: string;
}

/** `samples`: training samples over all epochs (validation included), for the one-off costs. */
export function chooseEngine(
  spec: Pick<TrainSpec, 'engine' | 'device'>,
  widths: readonly number[],
  batchSize: number,
  samples: number,
): EngineDecision {
  if (spec.engine === 'typescript') {
    if (spec.device === 'cuda') throw new SpecError("device 'cuda' needs engine 'onnx' (or 'auto'); the typescript engine runs on the CPU only");
    return { engine: 'typescript', reason: 'engine: typescript' };
  }
  if (spec.engine === 'onnx') return { engine: 'onnx', reason: 'engine: onnx' };
  if (spec.device === 'cuda') return { engine: 'onnx', reason: "device 'cuda' runs on the onnx engine" };
  const ts = estimatedTrainingMs('typescript', widths, samples, batchSize);
  const onnx = estimatedTrainingMs('onnx', widths, samples, batchSize);
  const engine: EngineName = ts <= onnx ? 'typescript' : 'onnx';
  return {
    engine,
    reason: `auto: head ${widths.join('→')}, batch ${batchSize}, ${samples} samples: estimated ${ts.toFixed(0)} ms (typescript) vs ${onnx.toFixed(0)} ms (onnx)`,
  };
}

/** Engine for a forward pass only (prediction, evaluation) over `rows` vectors, in chunks of EVAL_CHUNK_ROWS. */
export function chooseForwardEngine(spec: Pick<TrainSpec, 'engine' | 'device'>, widths: readonly number[], rows: number): EngineName {
  if (spec.engine !== 'auto') return chooseEngine(spec, widths, EVAL_CHUNK_ROWS, rows).engine;
  if (spec.device === 'cuda') return 'onnx';
  let macs = 0;
  for (let l = 0; l + 1 < widths.length; l++) macs += widths[l]! * widths[l + 1]!;
  const ts = rows * (TS_US_PER_SAMPLE * 1e3 + typescriptMacs(widths, macs) * TS_NS_PER_MAC) * 1e-6;
  const onnx = ONNX_SETUP_MS / 2 + Math.ceil(rows / EVAL_CHUNK_ROWS) * ONNX_US_PER_RUN * 1e-3 + rows * macs * ONNX_NS_PER_MAC * 1e-6;
  return ts <= onnx ? 'typescript' : 'onnx';
}
