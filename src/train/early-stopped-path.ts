// The automatic search's second family of regularisation: early stopping
// instead of an L2 penalty. weightDecay 'auto' weighs the best point of the
// L2 path against a linear head trained with Adam from the seeded initial
// weights and stopped at its best epoch by validation loss, and keeps the
// better one by the search's criterion (held-out accuracy, then loss).
//
// Why a second family: the L2 path on standardised features and early
// stopping on centred features reach about the same held-out loss (early-
// stopped gradient descent is close to ridge), but early stopping on
// features that keep their sign and their relative spread does not: on the
// fixture photos labelled with 29 of the backbone's ImageNet classes it
// reached a held-out loss of 0.85–0.99 where the best L2 strength reached
// 0.93–1.03, over five splits (docs/accuracy.md). So the features go in
// shifted by their training minimum and divided by one common scale: as
// invariant to a backbone's output scale and offset as standardisation, but
// neither centred nor equalised per feature.
import type { FeatureSplit } from './data.js';
import type { FeatureStats } from './standardize.js';

/** The early-stopped candidate's recipe (one learning rate: the features' scale is fixed by anchoredStats). */
export const EARLY_STOPPED_PATH = { optimizer: 'adam', lr: 3e-4, batchSize: 64 } as const;

/** At least this many optimiser steps may run, and this many without improvement stop it (see earlyStoppedBudget). */
const MIN_STEPS = 2000;
const PATIENCE_STEPS = 200;

/**
 * Epochs and patience for `rows` training rows: 100 epochs, patience 10,
 * or more of both on a small set, so that the run always has about the same
 * number of Adam steps (a small set has few batches per epoch, and 100 of
 * its epochs would stop while still underfitting).
 */
export function earlyStoppedBudget(rows: number): { epochs: number; patience: number } {
  const batches = Math.max(1, Math.ceil(rows / EARLY_STOPPED_PATH.batchSize));
  return { epochs: Math.max(100, Math.ceil(MIN_STEPS / batches)), patience: Math.max(10, Math.ceil(PATIENCE_STEPS / batches)) };
}

/** What the early-stopped candidate reached, for the record and the report. */
export interface EarlyStoppedCandidate {
  optimizer: 'adam';
  lr: number;
  maxEpochs: number;
  patience: number;
  /** 1-based epoch kept (lowest validation loss). */
  bestEpoch: number;
  accuracy: number;
  loss: number;
}

/**
 * Per-feature training minimum as the shift and one scale for all features
 * (the root mean square of the shifted training values), in the form
 * standardizeSplit and foldStandardization take: x' = (x − min) / s.
 */
export function anchoredStats(split: FeatureSplit): FeatureStats {
  const F = split.width;
  const n = split.indices.length;
  const min = new Float64Array(F).fill(Infinity);
  for (let r = 0; r < n; r++) {
    const at = split.indices[r]! * F;
    for (let k = 0; k < F; k++) if (split.features[at + k]! < min[k]!) min[k] = split.features[at + k]!;
  }
  let sum = 0;
  for (let r = 0; r < n; r++) {
    const at = split.indices[r]! * F;
    for (let k = 0; k < F; k++) {
      const d = split.features[at + k]! - min[k]!;
      sum += d * d;
    }
  }
  const rms = Math.sqrt(sum / (n * F));
  // All features constant: nothing to scale.
  const scale = rms > 0 ? rms : 1;
  return { mean: min, std: new Float64Array(F).fill(scale) };
}
