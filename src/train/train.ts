// The training loop shared by both engines: epochs, seeded shuffling and
// dropout masks, learning-rate schedule, per-epoch metrics, early stopping
// on validation loss with the best epoch's weights kept.
import { normaliseData, resolveClassWeights, type FeatureSplit, type TrainData } from './data.js';
import type { EngineName, EngineSetup, TrainEngine } from './engine.js';
import { chooseEngine } from './engine-choice.js';
import { checkHeadShape, checkWeights, dropoutOf, initHead, layerWidths, type HeadSpec, type HeadWeights } from './head.js';
import { OnnxEngine } from './onnx.js';
import { Prng } from './prng.js';
import { fitLinearHead, SEARCH_ROWS, type RegularizationSearch, type SolveRecord, type CandidateScore } from './linear-solve.js';
import { anchoredStats, earlyStoppedBudget, EARLY_STOPPED_PATH, type EarlyStoppedCandidate } from './early-stopped-path.js';
import { AUTO_PATIENCE, learningRate, SpecError, withTrainDefaults, type Device, type TrainSpec } from './spec.js';
import { checkFinite, featureStats, foldStandardization, standardizeSplit, type FeatureStats } from './standardize.js';
import { TypeScriptEngine } from './typescript.js';

/** What each epoch reports (the runner prints these, as the classic script prints loss and accuracy). */
export interface EpochMetrics {
  /** 1-based. */
  epoch: number;
  /** Class-weighted mean cross-entropy over the epoch's batches, each taken before its update. */
  trainLoss: number;
  /** Fraction of training samples classified correctly during the epoch (dropout active). */
  trainAccuracy: number;
  /** Class-weighted mean cross-entropy on the validation split after the epoch; null without one. */
  valLoss: number | null;
  valAccuracy: number | null;
  /** Learning rate used during the epoch. */
  lr: number;
  /** Wall-clock seconds of the epoch (the only value that varies between identical runs). */
  seconds: number;
}

export interface TrainOptions {
  data: TrainData;
  head: HeadSpec;
  /**
   * Training parameters, valid against trainSpecSchema (analysis checks a pipeline's;
   * direct callers use parseTrainSpec); missing ones take their defaults.
   */
  spec?: Partial<TrainSpec>;
  /** Starting weights (e.g. from the "replace head" step); default: initHead(head, …). */
  initialWeights?: HeadWeights;
  onEpoch?: (metrics: EpochMetrics) => void | Promise<void>;
  /** weightDecay 'auto': called with each candidate's score as the search goes. */
  onCandidate?: (candidate: CandidateScore) => void | Promise<void>;
  signal?: AbortSignal;
  /** ONNX engine only: 'float64' runs the float64 build of the graph, for checks against references. */
  precision?: 'float32' | 'float64';
  /** ONNX engine only: onnxruntime intra-op threads (default: 1 for small heads, else one per core). */
  threads?: number;
  /** lbfgs with weightDecay 'auto': the search's subsample size (default SEARCH_ROWS; Infinity searches every row), for benchmarks. */
  searchRows?: number;
}

export interface TrainResult {
  /** The best epoch's weights (lowest validation loss), or the last epoch's without a validation split. */
  weights: HeadWeights;
  /** 1-based epoch the weights come from. */
  bestEpoch: number;
  history: EpochMetrics[];
  stoppedEarly: boolean;
  engine: EngineName;
  device: Device;
  /** Why this engine ran (for 'auto', the size estimate that decided it). */
  engineReason: string;
  /** The per-class loss weights used. */
  classWeights: number[];
  /** The complete, validated parameters. */
  spec: TrainSpec;
  /** The L2 strength used (the chosen one for weightDecay 'auto'). */
  weightDecay: number;
  /** The training split's feature statistics, already folded into `weights`; null when standardize is off. */
  standardization: FeatureStats | null;
  /** lbfgs: how the final solve ended. */
  solver: SolveRecord | null;
  /** weightDecay 'auto' with lbfgs: every candidate's score and the chosen strength. */
  regularization: RegularizationSearch | null;
}

async function createEngine(name: EngineName, setup: EngineSetup, spec: TrainSpec, options: TrainOptions): Promise<TrainEngine> {
  if (name === 'typescript') return new TypeScriptEngine(setup);
  return OnnxEngine.create(setup, { device: spec.device, dtype: options.precision, threads: options.threads });
}

/** Keep flags for each hidden layer of one batch: 1 with probability 1 − dropout. */
function dropoutKeep(rng: Prng, rows: number, hidden: readonly number[], dropout: number): Uint8Array[] {
  if (dropout === 0) return [];
  const threshold = Math.round(dropout * 4294967296);
  return hidden.map((width) => {
    const keep = new Uint8Array(rows * width);
    for (let j = 0; j < keep.length; j++) keep[j] = rng.nextUint32() >= threshold ? 1 : 0;
    return keep;
  });
}

function batchWeight(split: FeatureSplit, rows: Int32Array, classWeights: Float64Array): number {
  let sum = 0;
  for (let i = 0; i < rows.length; i++) sum += classWeights[split.labels[rows[i]!]!]!;
  return sum;
}

export async function train(options: TrainOptions): Promise<TrainResult> {
  const spec = withTrainDefaults(options.spec);
  const raw = normaliseData(options.data);
  checkFinite(raw.train, 'training split');
  if (raw.val) checkFinite(raw.val, 'validation split');
  // The head is trained on standardised features and the transform folded into it at the end.
  const stats = spec.standardize ? featureStats(raw.train) : null;
  const data = stats ? { ...raw, train: standardizeSplit(raw.train, stats), val: raw.val && standardizeSplit(raw.val, stats) } : raw;
  const unfold = (w: HeadWeights) => (stats ? foldStandardization(w, stats) : w);
  const { featureWidth, classes } = data;
  checkHeadShape(options.head, featureWidth, classes);
  const widths = layerWidths(options.head, featureWidth, classes);
  const initial = options.initialWeights ?? initHead(options.head, featureWidth, classes);
  checkWeights(initial, featureWidth);
  if (initial.layers.length !== widths.length - 1 || initial.layers.some((l, i) => l.outFeatures !== widths[i + 1]))
    throw new SpecError(`initial weights do not match the head: layer widths ${[featureWidth, ...initial.layers.map((l) => l.outFeatures)].join('→')}, head ${widths.join('→')}`);
  const patience = spec.patience === 'auto' ? (data.val ? AUTO_PATIENCE : null) : spec.patience;
  if (patience !== null && !data.val)
    throw new SpecError('early stopping (patience) needs a validation split');

  const classWeights = resolveClassWeights(spec.classWeights, data.train, classes);
  if (spec.optimizer === 'lbfgs') {
    if (widths.length !== 2) throw new SpecError("optimizer 'lbfgs' is for linear heads; train an 'mlp' head with adam, adamw or sgd");
    const n = data.train.indices.length;
    // One objective evaluation is a pass over every row; budget ~100 of them for the engine choice.
    const choice = chooseEngine(spec, widths, Math.min(n, 8192), 100 * (n + (data.val?.indices.length ?? 0)));
    const started = performance.now();
    const fit = await fitLinearHead({
      train: data.train,
      val: data.val,
      features: featureWidth,
      classes,
      classWeights,
      weightDecay: spec.weightDecay,
      grid: spec.weightDecayGrid,
      folds: spec.folds,
      seed: spec.seed,
      tolerance: spec.tolerance,
      maxIterations: spec.maxIterations,
      engine: choice.engine,
      device: spec.device,
      ...(options.threads ? { threads: options.threads } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.onCandidate ? { onCandidate: options.onCandidate } : {}),
      ...(options.searchRows ? { searchRows: options.searchRows } : {}),
    });
    const metrics: EpochMetrics = {
      epoch: 1,
      trainLoss: fit.train.lossSum / fit.train.weightSum,
      trainAccuracy: fit.train.correct / fit.train.count,
      valLoss: fit.val ? fit.val.lossSum / fit.val.weightSum : null,
      valAccuracy: fit.val ? fit.val.correct / fit.val.count : null,
      lr: 0,
      seconds: (performance.now() - started) / 1000,
    };
    // weightDecay 'auto' also weighs early stopping (early-stopped-path.ts), where a run of epochs is cheap.
    if (fit.search && raw.val && fit.val && raw.train.indices.length <= SEARCH_ROWS) {
      const anchor = anchoredStats(raw.train);
      const path = { ...EARLY_STOPPED_PATH, ...earlyStoppedBudget(raw.train.indices.length) };
      const stopped = await train({
        data: { featureWidth, classes, train: standardizeSplit(raw.train, anchor), val: standardizeSplit(raw.val, anchor) },
        head: options.head,
        spec: { ...spec, optimizer: path.optimizer, lr: path.lr, epochs: path.epochs, patience: path.patience, batchSize: path.batchSize, weightDecay: 0, standardize: false, lrSchedule: 'constant', minDelta: 0 },
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.threads ? { threads: options.threads } : {}),
      });
      const kept = stopped.history[stopped.bestEpoch - 1]!;
      const candidate: EarlyStoppedCandidate = {
        optimizer: path.optimizer, lr: path.lr, maxEpochs: path.epochs, patience: path.patience, bestEpoch: stopped.bestEpoch, accuracy: kept.valAccuracy!, loss: kept.valLoss!,
      };
      const l2 = { accuracy: metrics.valAccuracy!, loss: metrics.valLoss! };
      const earlyWins = candidate.accuracy > l2.accuracy || (candidate.accuracy === l2.accuracy && candidate.loss < l2.loss);
      fit.search.earlyStopping = candidate;
      if (earlyWins) {
        fit.search.family = 'early stopping';
        for (const m of stopped.history) await options.onEpoch?.(m);
        return {
          ...stopped,
          // Trained on the anchored features: the shift and scale fold into the layer like standardisation.
          weights: foldStandardization(stopped.weights, anchor),
          spec,
          standardization: anchor,
          solver: null,
          regularization: fit.search,
        };
      }
    }
    await options.onEpoch?.(metrics);
    return {
      weights: unfold(fit.weights),
      bestEpoch: 1,
      history: [metrics],
      stoppedEarly: false,
      engine: choice.engine,
      device: spec.device,
      engineReason: choice.reason,
      classWeights: Array.from(classWeights),
      spec,
      weightDecay: fit.weightDecay,
      standardization: stats,
      solver: fit.solve,
      regularization: fit.search,
    };
  }
  // Stochastic optimisers are regularised by their epochs (and early stopping); 'auto' adds no decay.
  const weightDecay = spec.weightDecay === 'auto' ? 0 : spec.weightDecay;
  const dropout = dropoutOf(options.head);
  const batchSize = Math.min(spec.batchSize, data.train.indices.length);
  const samplesPerEpoch = data.train.indices.length + (data.val?.indices.length ?? 0);
  const choice = chooseEngine(spec, widths, batchSize, samplesPerEpoch * spec.epochs);
  const setup: EngineSetup = {
    widths,
    initial,
    optimizer: { ...spec, optimizer: spec.optimizer, weightDecay },
    dropout,
    classWeights,
    batchSize,
  };
  const engine = await createEngine(choice.engine, setup, spec, options);

  const history: EpochMetrics[] = [];
  let best: { loss: number; epoch: number; weights: HeadWeights } | null = null;
  let sinceBest = 0;
  let stoppedEarly = false;
  try {
    const shuffleRng = new Prng(spec.seed, 2);
    const dropoutRng = new Prng(spec.seed, 3);
    const order = data.train.indices.slice();
    const hidden = widths.slice(1, -1);
    let step = 0;
    for (let e = 0; e < spec.epochs; e++) {
      options.signal?.throwIfAborted();
      const started = performance.now();
      const lr = learningRate(spec, e);
      shuffleRng.shuffle(order);
      let weightedLoss = 0;
      let weightTotal = 0;
      let correct = 0;
      for (let start = 0; start < order.length; start += batchSize) {
        if (options.signal?.aborted) options.signal.throwIfAborted();
        const rows = order.subarray(start, start + batchSize);
        const keep = dropoutKeep(dropoutRng, rows.length, hidden, dropout);
        const out = await engine.step(data.train, { rows, keep, lr, step: ++step });
        const w = batchWeight(data.train, rows, classWeights);
        weightedLoss += out.loss * w;
        weightTotal += w;
        correct += out.correct;
      }
      const val = data.val ? await engine.evaluate(data.val) : null;
      const metrics: EpochMetrics = {
        epoch: e + 1,
        trainLoss: weightedLoss / weightTotal,
        trainAccuracy: correct / order.length,
        valLoss: val ? val.lossSum / val.weightSum : null,
        valAccuracy: val ? val.correct / val.count : null,
        lr,
        seconds: (performance.now() - started) / 1000,
      };
      history.push(metrics);
      if (metrics.valLoss !== null) {
        if (best === null || metrics.valLoss < best.loss - spec.minDelta) {
          best = { loss: metrics.valLoss, epoch: metrics.epoch, weights: engine.weights() };
          sinceBest = 0;
        } else sinceBest++;
      }
      await options.onEpoch?.(metrics);
      if (patience !== null && sinceBest >= patience && e + 1 < spec.epochs) {
        stoppedEarly = true;
        break;
      }
    }
    // Without a validation split (or if validation loss was never a number), keep the last epoch.
    const weights = best?.weights ?? engine.weights();
    return {
      weights: unfold(weights),
      bestEpoch: best?.epoch ?? history.length,
      history,
      stoppedEarly,
      engine: engine.name,
      device: engine.device,
      engineReason: choice.reason,
      classWeights: Array.from(classWeights),
      spec,
      weightDecay,
      standardization: stats,
      solver: null,
      regularization: null,
    };
  } finally {
    await engine.dispose();
  }
}
