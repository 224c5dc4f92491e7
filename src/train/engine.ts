// The contract between the training loop and the two engines that run its
// steps. The loop owns everything random (batch order, dropout masks), so
// both engines see exactly the same batches and masks.
import type { FeatureSplit } from './data.js';
import type { HeadWeights } from './head.js';
import type { Device, GradientOptimizerName } from './spec.js';

export type EngineName = 'onnx' | 'typescript';

/** Optimiser settings that stay fixed for a run. */
export interface OptimizerConfig {
  optimizer: GradientOptimizerName;
  betas: readonly [number, number];
  eps: number;
  momentum: number;
  dampening: number;
  nesterov: boolean;
  weightDecay: number;
}

export interface EngineSetup {
  /** Layer widths [features, ...hidden, classes]. */
  widths: number[];
  initial: HeadWeights;
  optimizer: OptimizerConfig;
  /** Dropout probability after each hidden ReLU (0: none). */
  dropout: number;
  classWeights: Float64Array;
  /** Largest batch the loop will send. */
  batchSize: number;
}

export interface StepInput {
  /** Row indices of this batch into the split's features. */
  rows: Int32Array;
  /**
   * Per hidden layer, rows×width keep flags (1 kept, 0 dropped); kept
   * activations are scaled by 1/(1-dropout). Empty when dropout is 0.
   */
  keep: Uint8Array[];
  /** Learning rate of this step. */
  lr: number;
  /** 1-based count of optimisation steps so far, this one included. */
  step: number;
}

export interface StepOutput {
  /** The batch's loss before the update: class-weighted mean cross-entropy. */
  loss: number;
  /** Samples of the batch whose largest logit is the true class. */
  correct: number;
}

export interface EvalOutput {
  /** Σ class weight × cross-entropy over the split. */
  lossSum: number;
  /** Σ class weight over the split. */
  weightSum: number;
  correct: number;
  count: number;
}

export interface TrainEngine {
  readonly name: EngineName;
  readonly device: Device;
  step(split: FeatureSplit, input: StepInput): Promise<StepOutput> | StepOutput;
  evaluate(split: FeatureSplit): Promise<EvalOutput> | EvalOutput;
  /** A float32 copy of the current parameters. */
  weights(): HeadWeights;
  dispose(): Promise<void> | void;
}

/** Rows evaluated per forward pass when no gradient is needed. */
export const EVAL_CHUNK_ROWS = 2048;
