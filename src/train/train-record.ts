// What a training run leaves behind besides the weights: the facts recorded
// in the head's artifact and the run record (standardisation, the solver's
// end state, the regularisation search), the log lines of the search, and
// the checks of the step's input that name the images at fault.
import type { TrainResult } from './train.js';
import { statsRecord } from './standardize.js';
import type { TrainSpec } from './spec.js';
import type { TrainingValue } from '../artifacts/head.js';

interface SplitInput {
  images: { path: string }[];
  features: Float32Array;
  labels: Int32Array;
}

/** Rows of a row-major matrix with a NaN or infinite value, at most `limit`. */
export function nonFiniteVectors(features: Float32Array, width: number, limit = Infinity): number[] {
  const bad: number[] = [];
  for (let r = 0; r * width < features.length && bad.length < limit; r++)
    for (let k = 0; k < width; k++)
      if (!Number.isFinite(features[r * width + k]!)) {
        bad.push(r);
        break;
      }
  return bad;
}

/** A message naming what is wrong with the training input, or null. */
export function checkTrainingInput(
  spec: Pick<TrainSpec, 'optimizer' | 'weightDecay'>, classes: readonly string[], width: number, train: SplitInput, val: SplitInput,
): string | null {
  for (const [name, split] of [['training', train], ['validation', val]] as const) {
    const bad = nonFiniteVectors(split.features, width);
    if (bad.length) {
      const shown = bad.slice(0, 10).map((r) => split.images[r]!.path);
      return `the features of ${bad.length} ${name} image${bad.length === 1 ? '' : 's'} contain NaN or infinite values (a broken backbone, or a corrupt features artifact: rerun with --force=features): ${shown.join(', ')}${bad.length > 10 ? `, and ${bad.length - 10} more` : ''}`;
    }
  }
  if (spec.weightDecay === 'auto' && spec.optimizer === 'lbfgs' && val.images.length) {
    const inVal = new Set(val.labels);
    const inTrain = new Set(train.labels);
    const missing = classes.filter((_, c) => inTrain.has(c) && !inVal.has(c));
    if (missing.length)
      return `weightDecay 'auto' scores candidates on the validation split, but class${missing.length === 1 ? '' : 'es'} ${missing.map((m) => `'${m}'`).join(', ')} ${missing.length === 1 ? 'has' : 'have'} no validation images: add some, raise the dataset's valFraction, or set weightDecay to a number`;
  }
  return null;
}

/** The search as log lines: the chosen strength and how the solve ended. */
export function describeSearch(result: TrainResult): string[] {
  const lines: string[] = [];
  const search = result.regularization;
  if (search)
    lines.push(
      `weightDecay auto: chose ${search.chosen} of ${search.candidates.length} candidates by ${search.criterion} (${search.method === 'k-fold' ? `${search.folds}-fold cross-validation on the training split` : 'validation split'})`,
    );
  const stopped = search?.earlyStopping;
  if (stopped)
    lines.push(
      `weightDecay auto: early stopping (${stopped.optimizer} lr ${stopped.lr}, best epoch ${stopped.bestEpoch} by validation loss) reached held-out accuracy ${(100 * stopped.accuracy).toFixed(2)} % loss ${stopped.loss.toFixed(4)}: ${search!.family === 'early stopping' ? 'kept, better than the L2 path' : 'the L2 path is kept'}`,
    );
  if (search && search.searchRows < search.trainRows)
    lines.push(
      `weightDecay auto: candidates solved on ${search.searchRows} of the ${search.trainRows} training rows (a stratified subsample); the final fit on all of them uses ${Number(search.applied.toPrecision(3))} (the same penalty on the summed loss)`,
    );
  const solver = result.solver;
  if (solver)
    lines.push(`lbfgs: ${solver.iterations} iterations, ${solver.stop}, largest gradient component ${solver.gradientNorm.toExponential(2)}`);
  return lines;
}

/** Facts for the head's artifact (metadata) and for the stage's value in the run record. */
export function recordOf(result: TrainResult): { metadata: Record<string, unknown>; value: Pick<TrainingValue, 'optimizer' | 'weightDecay' | 'standardized' | 'solver' | 'regularization'> } {
  const facts = {
    optimizer: result.spec.optimizer,
    weightDecay: result.weightDecay,
    ...(result.solver ? { solver: result.solver } : {}),
    ...(result.regularization ? { regularization: result.regularization } : {}),
  };
  return {
    metadata: {
      ...facts,
      // Already folded into the first layer; kept so the head says how its inputs were scaled in training.
      standardization: result.standardization ? { folded: true, ...statsRecord(result.standardization) } : null,
    },
    value: { ...facts, standardized: result.standardization !== null },
  };
}
