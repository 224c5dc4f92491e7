// The full-batch solver for linear heads, feature standardisation and the
// automatic regularisation search: gradients against finite differences,
// the optimum against an independent Newton solver, both engines against
// each other, invariance to the features' scale and offset, determinism,
// and the errors bad input gets.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { evaluate } from '../src/train/evaluate.js';
import { minimize } from '../src/train/lbfgs.js';
import { assignFolds, fitLinearHead, SEARCH_ROWS, searchSubset, solve } from '../src/train/linear-solve.js';
import { createObjective, OnnxObjective, TypeScriptObjective } from '../src/train/objective.js';
import { Prng } from '../src/train/prng.js';
import { DEFAULT_WEIGHT_DECAY_GRID, parseTrainSpec } from '../src/train/spec.js';
import { featureStats, foldStandardization, standardizeSplit } from '../src/train/standardize.js';
import { compactSplit, type FeatureSplit } from '../src/train/data.js';
import { train, type TrainOptions } from '../src/train/train.js';
import { typescriptLogits } from '../src/train/typescript.js';

/** Overlapping classes: class c is shifted along feature c, with noise, then scaled and offset. */
function problem(rows: number, width: number, classes: number, seed: number, scale = 1, offset = 0) {
  const rng = new Prng(seed);
  const features = new Float32Array(rows * width);
  const labels = new Int32Array(rows);
  for (let i = 0; i < rows; i++) {
    const y = i % classes;
    labels[i] = y;
    for (let k = 0; k < width; k++) {
      const noise = (rng.uniform() + rng.uniform() + rng.uniform() - 1.5) * 1.5 * (1 + (k % 3));
      features[i * width + k] = (noise + (k % classes === y ? 0.8 : 0)) * scale + offset;
    }
  }
  return { features, labels };
}

function split(p: { features: Float32Array; labels: Int32Array }, width: number): FeatureSplit {
  const n = p.labels.length;
  return { features: p.features, labels: p.labels, indices: Int32Array.from({ length: n }, (_, i) => i), width };
}

const maxAbs = (a: ArrayLike<number>) => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

test('lbfgs minimises the Rosenbrock function from the textbook start', async () => {
  const result = await minimize(
    (x, g) => {
      const [a, b] = [x[0]!, x[1]!];
      g[0] = -2 * (1 - a) - 400 * a * (b - a * a);
      g[1] = 200 * (b - a * a);
      return (1 - a) ** 2 + 100 * (b - a * a) ** 2;
    },
    Float64Array.of(-1.2, 1),
    { tolerance: 1e-8, maxIterations: 200 },
  );
  assert.equal(result.stop, 'gradient tolerance');
  assert.ok(Math.abs(result.x[0]! - 1) < 1e-6 && Math.abs(result.x[1]! - 1) < 1e-6, `reached ${result.x}`);
});

for (const classes of [2, 4]) {
  test(`objective gradient (${classes} classes, class weights) matches central finite differences; ONNX agrees with TypeScript`, async () => {
    const F = 6;
    const p = problem(40, F, classes, 7);
    const setup = { split: split(p, F), features: F, classes, classWeights: Float64Array.from({ length: classes }, (_, c) => 1 + c / 2) };
    const ts = new TypeScriptObjective(setup);
    const rng = new Prng(3);
    const params = Float64Array.from({ length: classes * (F + 1) }, () => rng.uniform() - 0.5);
    const grad = new Float64Array(params.length);
    const value = ts.valueAndGradient(params, grad);
    const scratch = new Float64Array(params.length);
    for (let j = 0; j < params.length; j++) {
      const h = 1e-6;
      const up = Float64Array.from(params);
      const down = Float64Array.from(params);
      up[j]! += h;
      down[j]! -= h;
      const numeric = (ts.valueAndGradient(up, scratch) - ts.valueAndGradient(down, scratch)) / (2 * h);
      assert.ok(Math.abs(numeric - grad[j]!) < 1e-7, `parameter ${j}: analytic ${grad[j]} vs numeric ${numeric}`);
    }
    const onnx = await OnnxObjective.create(setup, 'cpu');
    try {
      const g2 = new Float64Array(params.length);
      const v2 = await onnx.valueAndGradient(params, g2);
      assert.ok(Math.abs(v2 - value) < 1e-5 * Math.abs(value), `loss ${v2} vs ${value}`);
      assert.ok(maxDiff(g2, grad) < 1e-5 * Math.max(1, maxAbs(grad)), `gradient differs by ${maxDiff(g2, grad)}`);
      const s1 = ts.score(params, setup.split);
      const s2 = await onnx.score(params, setup.split);
      assert.equal(s2.correct, s1.correct);
      assert.ok(Math.abs(s2.lossSum - s1.lossSum) < 1e-4 * s1.lossSum);
    } finally {
      await onnx.dispose();
    }
  });
}

/**
 * Reference: binary L2-regularised logistic regression by Newton's method
 * (exact Hessian, solved by Gaussian elimination), independent of the solver
 * under test. Minimises mean log(1 + exp(−s·(v·x + c))) + λ/4·‖v‖², which is
 * the two-class softmax problem with W = [−v/2, v/2] and λ/2·‖W‖².
 */
function newtonBinary(x: Float32Array, labels: Int32Array, F: number, lambda: number): Float64Array {
  const n = labels.length;
  const D = F + 1;
  const w = new Float64Array(D);
  for (let iter = 0; iter < 50; iter++) {
    const g = new Float64Array(D);
    const H = Array.from({ length: D }, () => new Float64Array(D));
    for (let i = 0; i < n; i++) {
      const row = [...x.subarray(i * F, (i + 1) * F), 1];
      let z = 0;
      for (let k = 0; k < D; k++) z += w[k]! * row[k]!;
      const p = 1 / (1 + Math.exp(-z));
      const r = p - labels[i]!;
      for (let a = 0; a < D; a++) {
        g[a] += (r * row[a]!) / n;
        for (let b = 0; b < D; b++) H[a]![b] += (p * (1 - p) * row[a]! * row[b]!) / n;
      }
    }
    for (let k = 0; k < F; k++) {
      g[k] += (lambda / 2) * w[k]!;
      H[k]![k] += lambda / 2;
    }
    // Solve H·step = g.
    const A = H.map((r, i) => [...r, g[i]!]);
    for (let c = 0; c < D; c++) {
      let pivot = c;
      for (let r = c + 1; r < D; r++) if (Math.abs(A[r]![c]!) > Math.abs(A[pivot]![c]!)) pivot = r;
      [A[c], A[pivot]] = [A[pivot]!, A[c]!];
      for (let r = 0; r < D; r++) {
        if (r === c) continue;
        const f = A[r]![c]! / A[c]![c]!;
        for (let k = c; k <= D; k++) A[r]![k] -= f * A[c]![k]!;
      }
    }
    let moved = 0;
    for (let k = 0; k < D; k++) {
      const step = A[k]![D]! / A[k]![k]!;
      w[k] -= step;
      moved = Math.max(moved, Math.abs(step));
    }
    if (moved < 1e-13) break;
  }
  return w;
}

for (const engine of ['typescript', 'onnx'] as const) {
  test(`lbfgs reaches the optimum of an independent Newton solver (${engine} engine)`, async () => {
    const F = 8;
    const p = problem(300, F, 2, 11);
    const lambda = 0.01;
    const reference = newtonBinary(p.features, p.labels, F, lambda);
    const objective = await createObjective(engine, { split: split(p, F), features: F, classes: 2, classWeights: Float64Array.of(1, 1) }, 'cpu');
    try {
      const tolerance = engine === 'typescript' ? 1e-7 : 1e-5;
      const { params, record } = await solve(objective, F, 2, lambda, new Float64Array(2 * (F + 1)), { tolerance, maxIterations: 500 });
      const v = Array.from({ length: F }, (_, k) => params[F + k]! - params[k]!);
      const c = params[2 * F + 1]! - params[2 * F]!;
      const err = Math.max(maxDiff(v, reference.subarray(0, F)), Math.abs(c - reference[F]!));
      assert.ok(err < (engine === 'typescript' ? 1e-6 : 1e-3), `differs from the Newton optimum by ${err} (${JSON.stringify(record)})`);
      if (engine === 'typescript') assert.equal(record.stop, 'gradient tolerance');
      // The penalty splits W symmetrically: W0 = −W1.
      for (let k = 0; k < F; k++) assert.ok(Math.abs(params[k]! + params[F + k]!) < 1e-4);
    } finally {
      await objective.dispose();
    }
  });
}

test('lbfgs on 5 classes: both engines reach the same optimum, and its gradient vanishes', async () => {
  const F = 10;
  const C = 5;
  const p = problem(400, F, C, 5);
  const setup = { split: split(p, F), features: F, classes: C, classWeights: new Float64Array(C).fill(1) };
  const start = new Float64Array(C * (F + 1));
  const ts = await solve(new TypeScriptObjective(setup), F, C, 1e-3, start, { tolerance: 1e-8, maxIterations: 1000 });
  const onnxObjective = await OnnxObjective.create(setup, 'cpu');
  try {
    const onnx = await solve(onnxObjective, F, C, 1e-3, start, { tolerance: 1e-5, maxIterations: 1000 });
    assert.equal(ts.record.stop, 'gradient tolerance');
    assert.ok(ts.record.gradientNorm <= 1e-8);
    // Softmax logits are defined up to a per-row constant; the penalty pins W (Σ_c W_c = 0), the bias is compared centred.
    const centred = (x: Float64Array) => {
      const b = x.subarray(C * F);
      const mean = b.reduce((a, v) => a + v, 0) / C;
      return [...x.subarray(0, C * F), ...Array.from(b, (v) => v - mean)];
    };
    const diff = maxDiff(centred(ts.params), centred(onnx.params));
    assert.ok(diff < 2e-3 * Math.max(1, maxAbs(ts.params)), `engines differ by ${diff}`);
  } finally {
    await onnxObjective.dispose();
  }
});

test('standardisation: folded weights on raw features give the logits of the head on standardised features', () => {
  const F = 12;
  const p = problem(50, F, 3, 2, 20, 5);
  const s = split(p, F);
  const stats = featureStats(s);
  const z = standardizeSplit(s, stats);
  for (let k = 0; k < F; k++) {
    let m = 0, v = 0;
    for (let i = 0; i < 50; i++) m += z.features[i * F + k]! / 50;
    for (let i = 0; i < 50; i++) v += (z.features[i * F + k]! - m) ** 2 / 50;
    assert.ok(Math.abs(m) < 1e-5 && Math.abs(v - 1) < 1e-4, `feature ${k}: mean ${m}, variance ${v}`);
  }
  const rng = new Prng(9);
  const head = { layers: [{ weight: Float32Array.from({ length: 3 * F }, () => rng.uniform() - 0.5), bias: Float32Array.of(0.1, -0.2, 0.3), inFeatures: F, outFeatures: 3 }] };
  const onStandardised = typescriptLogits(head, z.features);
  const onRaw = typescriptLogits(foldStandardization(head, stats), p.features);
  assert.ok(maxDiff(onStandardised, onRaw) < 1e-4, `logits differ by ${maxDiff(onStandardised, onRaw)}`);
});

test('a constant feature is left unscaled (no division by zero)', () => {
  const features = Float32Array.from([1, 3, 1, 5, 1, 7]);
  const stats = featureStats({ features, labels: Int32Array.of(0, 1, 0), indices: Int32Array.of(0, 1, 2), width: 2 });
  assert.equal(stats.std[0], 1);
  assert.ok(Math.abs(stats.std[1]! - Math.sqrt(8 / 3)) < 1e-12);
});

test('feature statistics of a feature whose mean dwarfs its spread match a two-pass float64 reference', () => {
  const n = 400;
  const F = 3;
  const rng = new Prng(21);
  const features = Float32Array.from({ length: n * F }, (_, i) => [1e5, 0, -3][i % F]! + (i % F === 1 ? 0 : rng.uniform() * 0.01));
  const rows = Int32Array.from({ length: n / 2 }, (_, i) => 2 * i + 1);
  const stats = featureStats({ features, labels: new Int32Array(n), indices: rows, width: F });
  for (let k = 0; k < F; k++) {
    let m = 0;
    for (const r of rows) m += features[r * F + k]! / rows.length;
    let v = 0;
    for (const r of rows) v += (features[r * F + k]! - m) ** 2 / rows.length;
    const sd = Math.sqrt(v) > 0 ? Math.sqrt(v) : 1;
    assert.ok(Math.abs(stats.mean[k]! - m) <= 1e-9 * Math.max(1, Math.abs(m)), `feature ${k}: mean ${stats.mean[k]} against ${m}`);
    assert.ok(Math.abs(stats.std[k]! - sd) <= 1e-6 * sd, `feature ${k}: std ${stats.std[k]} against ${sd}`);
  }
});

test('compactSplit gathers a subset into contiguous rows in order and keeps an already contiguous split as it is', () => {
  const features = Float32Array.from({ length: 12 }, (_, i) => i);
  const labels = Int32Array.of(0, 1, 0, 1, 1, 0);
  const subset = { features, labels, indices: Int32Array.of(4, 1, 5), width: 2 };
  const c = compactSplit(subset);
  assert.deepEqual([...c.features], [8, 9, 2, 3, 10, 11]);
  assert.deepEqual([...c.labels], [1, 1, 0]);
  assert.deepEqual([...c.indices], [0, 1, 2]);
  const run = { features, labels, indices: Int32Array.of(2, 3, 4), width: 2 };
  assert.equal(compactSplit(run), run);
});

const options = (p: ReturnType<typeof problem>, F: number, C: number, spec: TrainOptions['spec'], val?: ReturnType<typeof problem>): TrainOptions => ({
  data: { featureWidth: F, classes: C, train: p, ...(val ? { val } : {}) },
  head: { kind: 'linear' },
  spec,
});

test('train with lbfgs and standardisation does not care about the features’ scale or offset', async () => {
  const F = 16;
  const C = 3;
  const base = { optimizer: 'lbfgs' as const, weightDecay: 0.01, tolerance: 1e-7 };
  const results = [];
  for (const [scale, offset] of [[1, 0], [0.05, 0], [20, 0], [1, 7]] as const) {
    const trainSet = problem(240, F, C, 1, scale, offset);
    const valSet = problem(90, F, C, 2, scale, offset);
    const r = await train(options(trainSet, F, C, { ...base, engine: 'typescript' }, valSet));
    const e = await evaluate(r.weights, valSet.features, valSet.labels, C);
    results.push({ scale, offset, accuracy: e.accuracy, loss: e.loss, valAccuracy: r.history[0]!.valAccuracy });
  }
  for (const r of results) {
    // evaluate() on raw features with the folded head equals what training measured on standardised ones.
    assert.equal(r.accuracy, r.valAccuracy);
    assert.equal(r.accuracy, results[0]!.accuracy, JSON.stringify(results));
    assert.ok(Math.abs(r.loss - results[0]!.loss) < 1e-4, JSON.stringify(results));
  }
});

test('weightDecay auto on a validation split: every candidate scored, the best chosen, deterministic', async () => {
  const F = 20;
  const C = 4;
  const trainSet = problem(200, F, C, 3);
  const valSet = problem(200, F, C, 4);
  const seen: number[] = [];
  const run = () => train({ ...options(trainSet, F, C, { optimizer: 'lbfgs', weightDecay: 'auto' }, valSet), onCandidate: (c) => void seen.push(c.weightDecay) });
  const a = await run();
  const search = a.regularization!;
  assert.equal(search.method, 'validation split');
  assert.ok(search.candidates.length >= 4, `${search.candidates.length} candidates`);
  assert.deepEqual(seen, search.candidates.map((c) => c.weightDecay));
  assert.deepEqual(search.candidates.map((c) => c.weightDecay), [...DEFAULT_WEIGHT_DECAY_GRID].sort((x, y) => y - x).slice(0, search.candidates.length));
  const best = search.candidates.reduce((m, c) => (c.accuracy > m.accuracy || (c.accuracy === m.accuracy && c.loss < m.loss) ? c : m));
  assert.equal(search.chosen, best.weightDecay);
  assert.equal(a.weightDecay, best.weightDecay);
  assert.equal(a.history[0]!.valAccuracy, best.accuracy);
  // Neither the weakest nor the strongest: the grid brackets the optimum on this problem.
  assert.ok(best.weightDecay < 1 && best.weightDecay > 1e-6, `chose ${best.weightDecay}`);
  const b = await run();
  assert.deepEqual(b.weights, a.weights);
});

test('weightDecay auto without a validation split uses stratified k-fold on the training split', async () => {
  const F = 10;
  const C = 3;
  const trainSet = problem(150, F, C, 8);
  const r = await train(options(trainSet, F, C, { optimizer: 'lbfgs', weightDecay: 'auto', folds: 5, weightDecayGrid: [1, 0.1, 0.01, 0.001] }));
  const search = r.regularization!;
  assert.equal(search.method, 'k-fold');
  assert.equal(search.folds, 5);
  assert.deepEqual(search.candidates.map((c) => c.weightDecay), [1, 0.1, 0.01, 0.001]);
  assert.ok(search.candidates.every((c) => c.accuracy > 0 && c.accuracy <= 1));
  assert.ok([1, 0.1, 0.01, 0.001].includes(r.weightDecay));
  const folds = assignFolds(split(trainSet, F), 5, 0);
  for (let f = 0; f < 5; f++)
    for (let c = 0; c < C; c++) {
      const count = Array.from(folds).filter((x, i) => x === f && trainSet.labels[i] === c).length;
      assert.equal(count, 10, `fold ${f} has ${count} rows of class ${c}`);
    }
});

test('weightDecay auto on a large training split: candidates on a stratified subsample, the final fit on every row at the same summed-loss penalty, deterministic', async () => {
  const F = 8;
  const C = 3;
  const rows = Math.round(2.6 * SEARCH_ROWS);
  const trainSet = problem(rows, F, C, 21);
  const valSet = problem(600, F, C, 22);
  const sub = searchSubset(split(trainSet, F), 0);
  const parts = Math.round(rows / SEARCH_ROWS);
  assert.equal(parts, 3);
  // Stratified: each class keeps its share, within one row.
  for (let c = 0; c < C; c++) {
    const inSub = Array.from(sub.indices).filter((i) => trainSet.labels[i] === c).length;
    const all = Array.from(trainSet.labels).filter((y) => y === c).length;
    assert.ok(Math.abs(inSub - all / parts) <= 1, `class ${c}: ${inSub} of ${all}`);
  }
  assert.equal(new Set(sub.indices).size, sub.indices.length);
  const run = () => train(options(trainSet, F, C, { optimizer: 'lbfgs', weightDecay: 'auto' }, valSet));
  const a = await run();
  const search = a.regularization!;
  assert.equal(search.searchRows, sub.indices.length);
  assert.equal(search.trainRows, rows);
  assert.ok(DEFAULT_WEIGHT_DECAY_GRID.includes(search.chosen));
  assert.equal(search.applied, (search.chosen * search.searchRows) / rows);
  assert.equal(a.weightDecay, search.applied);
  assert.ok(a.solver!.converged, JSON.stringify(a.solver));
  // The final fit is the optimum at that strength on every row: a plain fit there gives the same head.
  const plain = await train(options(trainSet, F, C, { optimizer: 'lbfgs', weightDecay: search.applied, tolerance: 1e-6 }, valSet));
  assert.ok(maxDiff(plain.weights.layers[0]!.weight, a.weights.layers[0]!.weight) < 5e-3, `${maxDiff(plain.weights.layers[0]!.weight, a.weights.layers[0]!.weight)}`);
  const b = await run();
  assert.deepEqual(b.weights, a.weights);
  // Without a validation split: k-fold on the same subsample, the same carry to every row.
  const folded = (await train(options(trainSet, F, C, { optimizer: 'lbfgs', weightDecay: 'auto', weightDecayGrid: [1, 0.1, 0.01] }))).regularization!;
  assert.equal(folded.method, 'k-fold');
  assert.equal(folded.searchRows, sub.indices.length);
  assert.equal(folded.applied, (folded.chosen * folded.searchRows) / rows);
  // A split under about twice SEARCH_ROWS is searched whole.
  const small = searchSubset(split(problem(SEARCH_ROWS, F, C, 23), F), 0);
  assert.equal(small.indices.length, SEARCH_ROWS);
});

/** Non-negative, ReLU-like features (a shared positive level plus sparse class bumps) with noisy labels. */
function reluProblem(rows: number, F: number, C: number, seed: number, flip: number, scale = 1, offset = 0) {
  const rng = new Prng(seed);
  const proto = new Prng(99);
  const bumps = Array.from({ length: C }, () => Float32Array.from({ length: F }, () => (proto.uniform() < 0.2 ? proto.uniform() * 2 : 0)));
  const features = new Float32Array(rows * F);
  const labels = new Int32Array(rows);
  for (let i = 0; i < rows; i++) {
    const y = i % C;
    labels[i] = rng.uniform() < flip ? rng.below(C) : y;
    const level = 0.5 + rng.uniform();
    for (let k = 0; k < F; k++) {
      const v = level * (0.3 + bumps[y]![k]!) + (rng.uniform() - 0.5) * 2;
      features[i * F + k] = (v > 0 ? v : 0) * scale + offset;
    }
  }
  return { features, labels };
}

test('weightDecay auto weighs an early-stopped head against the L2 path and keeps the better one, folded for raw features, deterministic, blind to scale and offset', async () => {
  const [F, C] = [32, 5];
  const results = [];
  for (const [scale, offset] of [[1, 0], [20, 5]] as const) {
    const trainSet = reluProblem(400, F, C, 2, 0.4, scale, offset);
    const valSet = reluProblem(400, F, C, 12, 0.4, scale, offset);
    const r = await train(options(trainSet, F, C, { optimizer: 'lbfgs', weightDecay: 'auto' }, valSet));
    const search = r.regularization!;
    const stopped = search.earlyStopping!;
    // On this problem early stopping is better on held-out accuracy than every L2 candidate.
    assert.equal(search.family, 'early stopping', JSON.stringify(search));
    assert.ok(search.candidates.every((c) => c.accuracy < stopped.accuracy), JSON.stringify(search));
    assert.equal(r.weightDecay, 0);
    assert.equal(r.solver, null);
    assert.equal(r.bestEpoch, stopped.bestEpoch);
    assert.equal(r.history[r.bestEpoch - 1]!.valAccuracy, stopped.accuracy);
    // The shift and scale are folded into the layer: raw validation features give what training measured.
    const e = await evaluate(r.weights, valSet.features, valSet.labels, C);
    assert.equal(e.accuracy, stopped.accuracy);
    assert.ok(Math.abs(e.loss - stopped.loss) < 1e-3, `${e.loss} vs ${stopped.loss}`);
    results.push({ accuracy: stopped.accuracy, epoch: stopped.bestEpoch });
    if (scale === 1) {
      const again = await train(options(trainSet, F, C, { optimizer: 'lbfgs', weightDecay: 'auto' }, valSet));
      assert.deepEqual(again.weights, r.weights);
    }
  }
  assert.deepEqual(results[1], results[0]);
  // Another draw of the same kind of data: the L2 path is better there and is kept, the early-stopped score recorded.
  const r = await train(options(reluProblem(400, F, C, 1, 0.4), F, C, { optimizer: 'lbfgs', weightDecay: 'auto' }, reluProblem(400, F, C, 11, 0.4)));
  assert.equal(r.regularization!.family, 'l2');
  assert.ok(r.regularization!.earlyStopping!.accuracy <= r.history[0]!.valAccuracy!);
  assert.equal(r.weightDecay, r.regularization!.applied);
});

test('the fitted linear head matches between engines through train()', async () => {
  const F = 24;
  const C = 3;
  const trainSet = problem(300, F, C, 12, 3, 1);
  const valSet = problem(120, F, C, 13, 3, 1);
  const spec = { optimizer: 'lbfgs' as const, weightDecay: 0.003 };
  const ts = await train(options(trainSet, F, C, { ...spec, engine: 'typescript' }, valSet));
  const onnx = await train(options(trainSet, F, C, { ...spec, engine: 'onnx' }, valSet));
  assert.equal(ts.engine, 'typescript');
  assert.equal(onnx.engine, 'onnx');
  assert.equal(onnx.history[0]!.valAccuracy, ts.history[0]!.valAccuracy);
  assert.ok(Math.abs(onnx.history[0]!.valLoss! - ts.history[0]!.valLoss!) < 1e-4);
});

test('bad input: NaN features name their rows; lbfgs refuses an MLP head; one class only', async () => {
  const F = 4;
  const p = problem(20, F, 2, 1);
  p.features[3 * F + 2] = NaN;
  p.features[7 * F] = Infinity;
  await assert.rejects(train(options(p, F, 2, { optimizer: 'lbfgs' })), /training split: feature vectors 3, 7 contain NaN or infinite values/);
  const ok = problem(20, F, 2, 1);
  await assert.rejects(
    train({ ...options(ok, F, 2, { optimizer: 'lbfgs' }), head: { kind: 'mlp', hidden: [4], dropout: 0 } }),
    /'lbfgs' is for linear heads/,
  );
  await assert.rejects(train(options(ok, F, 1, { optimizer: 'lbfgs' })), /at least 2 classes/);
  assert.throws(() => parseTrainSpec({ weightDecay: 'sometimes' }), /weightDecay/);
});

test('patience auto: early stopping with a validation split, none without', async () => {
  const F = 8;
  const trainSet = problem(64, F, 2, 1);
  const valSet = problem(64, F, 2, 2);
  // A learning rate this high overfits at once, so validation loss stops improving.
  const withVal = await train(options(trainSet, F, 2, { lr: 0.5, epochs: 200, batchSize: 8 }, valSet));
  assert.ok(withVal.stoppedEarly && withVal.history.length < 200, `${withVal.history.length} epochs`);
  assert.equal(withVal.history.length, withVal.bestEpoch + 10);
  const without = await train(options(trainSet, F, 2, { lr: 0.5, epochs: 30, batchSize: 8 }));
  assert.equal(without.history.length, 30);
});
