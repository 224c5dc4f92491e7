// A linear head trained to the optimum of its L2-regularised cross-entropy
// with L-BFGS (the linear-probe protocol of Kornblith et al. 2019 and of
// CLIP), and the automatic choice of the regularisation strength: a path
// over candidate strengths, from strong to weak, each solve warm-started
// from the previous one, scored on the validation split (or by k-fold
// cross-validation on the training split when there is none).
import { compactSplit, type FeatureSplit } from './data.js';
import type { EngineName } from './engine.js';
import type { HeadWeights } from './head.js';
import { minimize, type CorrectionPairs, type LbfgsResult } from './lbfgs.js';
import { createObjective, type LinearObjective, type SplitScore } from './objective.js';
import type { EarlyStoppedCandidate } from './early-stopped-path.js';
import { Prng } from './prng.js';
import type { Device } from './spec.js';

export interface SolveSettings {
  tolerance: number;
  maxIterations: number;
  signal?: AbortSignal;
}

/** What one solve reached. */
export interface SolveRecord {
  iterations: number;
  evaluations: number;
  converged: boolean;
  stop: LbfgsResult['stop'];
  /** Largest gradient component of the penalised objective at the end. */
  gradientNorm: number;
  /** Penalised objective at the end. */
  objective: number;
}

/** One candidate strength of the search and how it scored (summed over folds for k-fold). */
export interface CandidateScore {
  weightDecay: number;
  accuracy: number;
  /** Class-weighted mean cross-entropy on the held-out rows. */
  loss: number;
  /** L-BFGS iterations (over all folds). */
  iterations: number;
  converged: boolean;
}

export interface RegularizationSearch {
  /** 'validation split', or 'k-fold' with `folds` folds of the training split. */
  method: 'validation split' | 'k-fold';
  folds: number | null;
  criterion: 'held-out accuracy, then loss';
  candidates: CandidateScore[];
  /** The best candidate (a strength for `searchRows` training rows). */
  chosen: number;
  /** Training rows the candidates were solved on: all of them, or a stratified subsample of a large split. */
  searchRows: number;
  trainRows: number;
  /**
   * The strength of the final fit on all `trainRows`: `chosen` × searchRows / trainRows,
   * the same penalty on the summed loss (the prior's precision), so `chosen` itself without a subsample.
   */
  applied: number;
  /** The early-stopped candidate weighed against the L2 path's best (train.ts), or null where it did not run. */
  earlyStopping: EarlyStoppedCandidate | null;
  /** Where the head comes from: the L2 path at `applied`, or the early-stopped candidate. */
  family: 'l2' | 'early stopping';
}

/**
 * Above about twice this many training rows, the search solves its candidates
 * on a stratified, seeded subsample of about this many (the held-out scores
 * stay on the whole validation split), and only the final fit sees every row:
 * the candidates are most of the solver's work, and a half-decade grid does
 * not need every row to place its best point.
 */
export const SEARCH_ROWS = 8192;

/** Parameters as one vector [W (classes × features, row-major), b], and back. */
export function paramsToWeights(params: Float64Array, features: number, classes: number): HeadWeights {
  return {
    layers: [
      {
        weight: Float32Array.from(params.subarray(0, classes * features)),
        bias: Float32Array.from(params.subarray(classes * features)),
        inFeatures: features,
        outFeatures: classes,
      },
    ],
  };
}

/**
 * What a solve leaves for the next one along the path: its curvature pairs
 * and the strength they were taken at. The data term's curvature is the same
 * for every strength and the penalty's is λ on the weights, so a pair moves
 * to strength λ' exactly by y += (λ' − λ)·s on the weight coordinates.
 */
export interface WarmCurvature {
  pairs: CorrectionPairs;
  weightDecay: number;
}

function shiftedPairs(warm: WarmCurvature | undefined, weightDecay: number, penalised: number): CorrectionPairs {
  if (!warm) return { s: [], y: [] };
  const delta = weightDecay - warm.weightDecay;
  const y = warm.pairs.y.map((yj, j) => {
    const out = Float64Array.from(yj);
    if (delta !== 0) {
      const sj = warm.pairs.s[j]!;
      for (let i = 0; i < penalised; i++) out[i] += delta * sj[i]!;
    }
    return out;
  });
  return { s: warm.pairs.s.slice(), y };
}

/** Minimises data loss + λ/2·‖W‖² from `start` (and, when given, the curvature of a previous solve). */
export async function solve(
  objective: LinearObjective, features: number, classes: number, weightDecay: number, start: Float64Array, settings: SolveSettings,
  warm?: WarmCurvature,
): Promise<{ params: Float64Array; record: SolveRecord; curvature: WarmCurvature }> {
  const penalised = classes * features;
  const pairs = shiftedPairs(warm, weightDecay, penalised);
  const result = await minimize(
    async (x, grad) => {
      const data = await objective.valueAndGradient(x, grad);
      let norm = 0;
      for (let j = 0; j < penalised; j++) {
        norm += x[j]! * x[j]!;
        grad[j] += weightDecay * x[j]!;
      }
      return data + 0.5 * weightDecay * norm;
    },
    start,
    { tolerance: settings.tolerance, maxIterations: settings.maxIterations, pairs, ...(settings.signal ? { signal: settings.signal } : {}) },
  );
  return {
    curvature: { pairs, weightDecay },
    params: result.x,
    record: {
      iterations: result.iterations,
      evaluations: result.evaluations,
      converged: result.converged,
      stop: result.stop,
      gradientNorm: result.gradientNorm,
      objective: result.value,
    },
  };
}

export interface FitOptions extends SolveSettings {
  train: FeatureSplit;
  val: FeatureSplit | null;
  features: number;
  classes: number;
  classWeights: Float64Array;
  weightDecay: number | 'auto';
  grid: readonly number[];
  folds: number;
  seed: number;
  engine: EngineName;
  device: Device;
  threads?: number;
  onCandidate?: (candidate: CandidateScore) => void | Promise<void>;
  /** Subsample size of the search (default SEARCH_ROWS; Infinity: every row), for benchmarks. */
  searchRows?: number;
}

export interface FitResult {
  weights: HeadWeights;
  weightDecay: number;
  solve: SolveRecord;
  search: RegularizationSearch | null;
  /** The chosen solution's score on the validation split (null without one). */
  val: SplitScore | null;
  train: SplitScore;
}

/** Stop walking the path after this many weaker candidates without a better score. */
const PATH_PATIENCE = 2;
/**
 * Candidates are solved to a looser tolerance (held-out accuracy does not
 * move past it); the chosen one is then finished to the asked tolerance from
 * where its search solve stopped.
 */
const SEARCH_TOLERANCE_FACTOR = 10;

const better = (a: { accuracy: number; loss: number }, b: { accuracy: number; loss: number }) =>
  a.accuracy > b.accuracy || (a.accuracy === b.accuracy && a.loss < b.loss);

interface PathPoint {
  weightDecay: number;
  params: Float64Array;
  record: SolveRecord;
  curvature: WarmCurvature;
  held: SplitScore;
}

/**
 * Solves for each strength from strong to weak (warm starts: a weaker
 * strength's optimum lies near the previous one), scoring each on `held`;
 * stops early after PATH_PATIENCE candidates that do not improve when `stopEarly`.
 */
async function walkPath(
  objective: LinearObjective, options: FitOptions, grid: number[], held: FeatureSplit, stopEarly: boolean,
  onPoint: (p: PathPoint) => void | Promise<void>,
): Promise<void> {
  let start: Float64Array = new Float64Array(options.classes * (options.features + 1));
  let best: { accuracy: number; loss: number } | null = null;
  let since = 0;
  const settings = { ...options, tolerance: options.tolerance * SEARCH_TOLERANCE_FACTOR };
  let warm: WarmCurvature | undefined;
  for (const weightDecay of grid) {
    const { params, record, curvature } = await solve(objective, options.features, options.classes, weightDecay, start, settings, warm);
    const heldScore = await objective.score(params, held);
    await onPoint({ weightDecay, params, record, curvature, held: heldScore });
    start = params;
    warm = curvature;
    const s = { accuracy: heldScore.correct / heldScore.count, loss: heldScore.lossSum / heldScore.weightSum };
    if (best === null || better(s, best)) {
      best = s;
      since = 0;
    } else if (stopEarly && ++since >= PATH_PATIENCE) break;
  }
}

/** Stratified, seeded fold of every training row: fold[i] in 0…k-1. */
export function assignFolds(split: FeatureSplit, k: number, seed: number, stream = 4): Int32Array {
  const rng = new Prng(seed, stream);
  const byClass = new Map<number, number[]>();
  split.indices.forEach((row, i) => {
    const y = split.labels[row]!;
    const members = byClass.get(y);
    if (members) members.push(i);
    else byClass.set(y, [i]);
  });
  const fold = new Int32Array(split.indices.length);
  let offset = 0;
  for (const y of [...byClass.keys()].sort((a, b) => a - b)) {
    const members = Int32Array.from(byClass.get(y)!);
    rng.shuffle(members);
    // Dealt round-robin, continuing where the previous class stopped, so fold sizes stay even.
    members.forEach((i, j) => (fold[i] = (offset + j) % k));
    offset = (offset + members.length) % k;
  }
  return fold;
}

function subset(split: FeatureSplit, fold: Int32Array, f: number, inFold: boolean): FeatureSplit {
  const rows: number[] = [];
  for (let i = 0; i < split.indices.length; i++) if ((fold[i] === f) === inFold) rows.push(split.indices[i]!);
  return { ...split, indices: Int32Array.from(rows) };
}

function candidateOf(weightDecay: number, held: SplitScore, iterations: number, converged: boolean): CandidateScore {
  return { weightDecay, accuracy: held.correct / held.count, loss: held.lossSum / held.weightSum, iterations, converged };
}

/** The rows the search solves its candidates on: every training row, or one stratified part of about SEARCH_ROWS. */
export function searchSubset(split: FeatureSplit, seed: number, searchRows = SEARCH_ROWS): FeatureSplit {
  const parts = Math.round(split.indices.length / searchRows);
  return parts >= 2 ? compactSplit(subset(split, assignFolds(split, parts, seed, 5), 0, true)) : split;
}

export async function fitLinearHead(options: FitOptions): Promise<FitResult> {
  const { features, classes } = options;
  const setup = (split: FeatureSplit) => ({ split, features, classes, classWeights: options.classWeights });
  const objective = await createObjective(options.engine, setup(options.train), options.device, options.threads);
  try {
    const zero = () => new Float64Array(classes * (features + 1));
    const finish = async (weightDecay: number, params: Float64Array, record: SolveRecord, search: RegularizationSearch | null): Promise<FitResult> => ({
      weights: paramsToWeights(params, features, classes),
      weightDecay,
      solve: record,
      search,
      val: options.val ? await objective.score(params, options.val) : null,
      train: await objective.score(params, options.train),
    });
    if (options.weightDecay !== 'auto') {
      const { params, record } = await solve(objective, features, classes, options.weightDecay, zero(), options);
      return await finish(options.weightDecay, params, record, null);
    }
    const grid = [...new Set(options.grid)].sort((a, b) => b - a);
    const trainRows = options.train.indices.length;
    const searchSplit = searchSubset(options.train, options.seed, options.searchRows);
    const searchRows = searchSplit.indices.length;
    const sizes = { searchRows, trainRows };
    // Same penalty on the summed loss: λ·n stays fixed from the search's rows to all of them.
    const applied = (chosen: number) => (searchRows === trainRows ? chosen : (chosen * searchRows) / trainRows);
    const withSearchObjective = async <T>(split: FeatureSplit, use: (o: LinearObjective) => Promise<T>): Promise<T> => {
      if (split === options.train) return await use(objective);
      const o = await createObjective(options.engine, setup(split), options.device, options.threads);
      try {
        return await use(o);
      } finally {
        await o.dispose();
      }
    };
    if (options.val) {
      const val = options.val;
      const candidates: CandidateScore[] = [];
      let best: PathPoint | null = null;
      await withSearchObjective(searchSplit, (o) =>
        walkPath(o, options, grid, val, true, async (p) => {
          const c = candidateOf(p.weightDecay, p.held, p.record.iterations, p.record.converged);
          candidates.push(c);
          await options.onCandidate?.(c);
          if (best === null || better(c, candidateOf(best.weightDecay, best.held, 0, true))) best = p;
        }),
      );
      const chosen = best! as PathPoint;
      const weightDecay = applied(chosen.weightDecay);
      // The final fit starts where the chosen candidate stopped, with its curvature (the mean loss's curvature is about the same on a subsample).
      const final = await solve(objective, features, classes, weightDecay, chosen.params, options, chosen.curvature);
      return await finish(weightDecay, final.params, final.record, {
        method: 'validation split', folds: null, criterion: 'held-out accuracy, then loss', candidates, chosen: chosen.weightDecay, ...sizes, applied: weightDecay, earlyStopping: null, family: 'l2',
      });
    }
    // No validation split: k-fold on the search rows, every fold over the whole grid, then one solve on all rows.
    const k = Math.min(options.folds, searchRows);
    const fold = assignFolds(searchSplit, k, options.seed);
    const totals = grid.map((weightDecay) => ({ weightDecay, lossSum: 0, weightSum: 0, correct: 0, count: 0, iterations: 0, converged: true }));
    for (let f = 0; f < k; f++) {
      const held = subset(searchSplit, fold, f, true);
      if (held.indices.length === 0) continue;
      await withSearchObjective(compactSplit(subset(searchSplit, fold, f, false)), (foldObjective) =>
        walkPath(foldObjective, options, grid, held, false, (p) => {
          const t = totals.find((x) => x.weightDecay === p.weightDecay)!;
          t.lossSum += p.held.lossSum;
          t.weightSum += p.held.weightSum;
          t.correct += p.held.correct;
          t.count += p.held.count;
          t.iterations += p.record.iterations;
          t.converged &&= p.record.converged;
        }),
      );
    }
    const candidates = totals.map((t) => candidateOf(t.weightDecay, t, t.iterations, t.converged));
    for (const c of candidates) await options.onCandidate?.(c);
    const chosen = candidates.reduce((a, c) => (better(c, a) ? c : a));
    // As LogisticRegressionCV, the strength chosen on the folds is used as is on all the search rows.
    const weightDecay = applied(chosen.weightDecay);
    const { params, record } = await solve(objective, features, classes, weightDecay, zero(), options);
    return await finish(weightDecay, params, record, {
      method: 'k-fold', folds: k, criterion: 'held-out accuracy, then loss', candidates, chosen: chosen.weightDecay, ...sizes, applied: weightDecay, earlyStopping: null, family: 'l2',
    });
  } finally {
    await objective.dispose();
  }
}
