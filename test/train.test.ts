// Training behaviour: specs, initialisation, determinism, early stopping,
// class weights, convergence, and the CUDA error.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Ajv } from 'ajv';
import { chooseEngine } from '../src/train/engine-choice.js';
import { headSpecSchema, initHead, type HeadSpec } from '../src/train/head.js';
import { predict } from '../src/train/evaluate.js';
import { Prng } from '../src/train/prng.js';
import { DEFAULT_WEIGHT_DECAY_GRID, learningRate, parseHeadSpec, parseTrainSpec, SpecError, trainSpecSchema } from '../src/train/spec.js';
import { train, type TrainOptions, type TrainResult } from '../src/train/train.js';

/** Gaussian-ish clusters: class c is shifted by `separation` along feature c. */
function clusters(rows: number, width: number, classes: number, seed: number, separation: number, classOf?: (i: number) => number) {
  const rng = new Prng(seed);
  const features = new Float32Array(rows * width);
  const labels = new Int32Array(rows);
  for (let i = 0; i < rows; i++) {
    const y = classOf ? classOf(i) : rng.below(classes);
    labels[i] = y;
    for (let k = 0; k < width; k++) {
      const noise = (rng.uniform() + rng.uniform() + rng.uniform() - 1.5) * 0.8;
      features[i * width + k] = noise + (k === y ? separation : 0);
    }
  }
  return { features, labels };
}

const withoutSeconds = (h: { seconds: number }[]) => h.map(({ seconds: _, ...rest }) => rest);

test('parseTrainSpec fills defaults', () => {
  const spec = parseTrainSpec({});
  assert.deepEqual(spec, {
    engine: 'auto', device: 'cpu', optimizer: 'adam', lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8,
    momentum: 0.9, dampening: 0, nesterov: false, weightDecay: 0, weightDecayGrid: DEFAULT_WEIGHT_DECAY_GRID, folds: 5,
    standardize: true, tolerance: 1e-4, maxIterations: 500, batchSize: 64, epochs: 10, seed: 0,
    classWeights: null, patience: 'auto', minDelta: 0, lrSchedule: 'constant', lrStepEpochs: 7, lrGamma: 0.1, lrMin: 0,
  });
});

test('parseTrainSpec rejects absurd values with clear messages', () => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ epochs: 0 }, /train\.epochs must be >= 1/],
    [{ epochs: 1e9 }, /train\.epochs must be <= 100000/],
    [{ epochs: 2.5 }, /train\.epochs must be integer/],
    [{ batchSize: 0 }, /train\.batchSize must be >= 1/],
    [{ lr: 0 }, /train\.lr must be > 0/],
    [{ lr: -1 }, /train\.lr must be > 0/],
    [{ lr: Infinity }, /train\.lr/],
    [{ lr: Number.NaN }, /train\.lr/],
    [{ betas: [1, 0.999] }, /train\.betas\.0 must be < 1/],
    [{ eps: 0 }, /train\.eps must be > 0/],
    [{ momentum: 1 }, /train\.momentum must be < 1/],
    [{ weightDecay: -0.1 }, /train\.weightDecay must be >= 0/],
    [{ classWeights: [1, -2] }, /train\.classWeights/],
    [{ classWeights: 'balance' }, /train\.classWeights/],
    [{ patience: 0 }, /train\.patience/],
    [{ optimiser: 'adam' }, /must NOT have additional properties 'optimiser'/],
    [{ engine: 'gpu' }, /train\.engine must be equal to one of the allowed values/],
    [{ optimizer: 'sgd', momentum: 0, nesterov: true }, /nesterov momentum needs momentum > 0/],
  ];
  for (const [input, message] of bad) assert.throws(() => parseTrainSpec(input), (e: Error) => e instanceof SpecError && message.test(e.message), JSON.stringify(input));
});

test('the schemas compile under a strict Ajv with defaults', () => {
  const ajv = new Ajv({ strict: true, useDefaults: true });
  const head = { kind: 'mlp', hidden: [32] };
  assert.ok(ajv.validate(headSpecSchema, head));
  assert.deepEqual(head, { kind: 'mlp', hidden: [32], dropout: 0, seed: 0 });
  assert.ok(ajv.validate(trainSpecSchema, {}));
  for (const schema of [headSpecSchema, trainSpecSchema])
    for (const [name, property] of Object.entries(schema.properties)) {
      assert.ok('default' in property, `${name} has a default`);
      assert.ok(typeof property.description === 'string' && property.description.length > 10, `${name} has a description`);
    }
});

test('parseHeadSpec validates heads', () => {
  assert.deepEqual(parseHeadSpec({}), { kind: 'linear', seed: 0 });
  assert.deepEqual(parseHeadSpec({ kind: 'mlp', hidden: [64, 16], dropout: 0.2, seed: 5 }), { kind: 'mlp', hidden: [64, 16], dropout: 0.2, seed: 5 });
  assert.throws(() => parseHeadSpec({ kind: 'mlp' }), /head must have required property 'hidden'/);
  assert.throws(() => parseHeadSpec({ kind: 'mlp', hidden: [] }), /head\.hidden must NOT have fewer than 1 items/);
  assert.throws(() => parseHeadSpec({ kind: 'linear', hidden: [4] }), /head\.hidden must NOT have more than 0 items/);
  assert.throws(() => parseHeadSpec({ kind: 'mlp', hidden: [4], dropout: 1 }), /head\.dropout must be <= 0\.95/);
  assert.throws(() => parseHeadSpec({ kind: 'conv' }), /head\.kind must be equal to one of the allowed values/);
});

test('learning-rate schedules', () => {
  const spec = parseTrainSpec({ lr: 0.1, epochs: 10, lrSchedule: 'step', lrStepEpochs: 3, lrGamma: 0.5 });
  assert.deepEqual([0, 2, 3, 5, 6, 9].map((e) => learningRate(spec, e)), [0.1, 0.1, 0.05, 0.05, 0.025, 0.0125]);
  const cosine = parseTrainSpec({ lr: 0.1, epochs: 4, lrSchedule: 'cosine', lrMin: 0.02 });
  assert.equal(learningRate(cosine, 0), 0.1);
  assert.ok(Math.abs(learningRate(cosine, 2) - 0.06) < 1e-15);
});

test('initHead: PyTorch nn.Linear bounds, seeded and deterministic', () => {
  const spec: HeadSpec = { kind: 'mlp', hidden: [50], dropout: 0.1, seed: 11 };
  const a = initHead(spec, 400, 3);
  const b = initHead(spec, 400, 3);
  const c = initHead({ ...spec, seed: 12 }, 400, 3);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a.layers[0]!.weight, c.layers[0]!.weight);
  assert.deepEqual(a.layers.map((l) => [l.outFeatures, l.inFeatures, l.weight.length, l.bias.length]), [[50, 400, 20000, 50], [3, 50, 150, 3]]);
  for (const layer of a.layers) {
    const bound = 1 / Math.sqrt(layer.inFeatures);
    const values = [...layer.weight, ...layer.bias];
    assert.ok(values.every((v) => Math.abs(v) <= bound));
    // Uniform on ±bound: the mean |v| is bound/2.
    const meanAbs = values.reduce((s, v) => s + Math.abs(v), 0) / values.length;
    if (values.length > 1000) assert.ok(Math.abs(meanAbs - bound / 2) < 0.02 * bound);
  }
});

test('same seed and data give identical metrics and weights, on both engines', async () => {
  const width = 10;
  const all = clusters(300, width, 3, 1, 1);
  const data: TrainOptions['data'] = {
    ...all, featureWidth: width, classes: 3,
    trainIndices: Array.from({ length: 240 }, (_, i) => i), valIndices: Array.from({ length: 60 }, (_, i) => 240 + i),
  };
  const head: HeadSpec = { kind: 'mlp', hidden: [8], dropout: 0.3, seed: 2 };
  for (const engine of ['typescript', 'onnx'] as const) {
    const run = (seed: number): Promise<TrainResult> => train({ data, head, spec: { engine, epochs: 3, batchSize: 32, seed, lr: 0.01 } });
    const [a, b, c] = [await run(5), await run(5), await run(6)];
    assert.deepEqual(withoutSeconds(a.history), withoutSeconds(b.history));
    assert.deepEqual(a.weights, b.weights);
    assert.notDeepEqual(withoutSeconds(a.history), withoutSeconds(c.history), 'another seed shuffles differently');
  }
});

test('every epoch is reported through onEpoch', async () => {
  const all = clusters(100, 6, 2, 3, 1);
  const seen: number[] = [];
  const result = await train({
    data: { train: all, val: all, featureWidth: 6, classes: 2 },
    head: { kind: 'linear' },
    spec: { epochs: 3, engine: 'typescript' },
    onEpoch: (m) => {
      seen.push(m.epoch);
      assert.ok(m.trainLoss > 0 && m.valLoss! > 0 && m.seconds >= 0 && m.lr === 1e-3);
      assert.ok(m.trainAccuracy >= 0 && m.trainAccuracy <= 1 && m.valAccuracy! >= 0 && m.valAccuracy! <= 1);
    },
  });
  assert.deepEqual(seen, [1, 2, 3]);
  assert.equal(result.history.length, 3);
  assert.equal(result.bestEpoch, result.history.reduce((best, m) => (m.valLoss! < result.history[best - 1]!.valLoss! ? m.epoch : best), 1));
});

test('early stopping stops after `patience` epochs without improvement and keeps the best epoch', async () => {
  // Few samples in many dimensions with unrelated labels: training memorises, validation loss climbs.
  const width = 64;
  const trainSet = clusters(40, width, 2, 7, 0);
  const valSet = clusters(200, width, 2, 8, 0);
  const base: TrainOptions = {
    data: { train: trainSet, val: valSet, featureWidth: width, classes: 2 },
    head: { kind: 'linear' },
    spec: { engine: 'typescript', lr: 0.05, batchSize: 8, epochs: 60, patience: 3 },
  };
  const stopped = await train(base);
  assert.ok(stopped.stoppedEarly);
  const losses = stopped.history.map((m) => m.valLoss!);
  const best = losses.indexOf(Math.min(...losses)) + 1;
  assert.equal(stopped.bestEpoch, best);
  assert.equal(stopped.history.length, best + 3);
  assert.ok(stopped.history.length < 60);
  // The returned weights are those after the best epoch: retraining for exactly that many epochs reproduces them.
  const rerun = await train({ ...base, spec: { ...base.spec, epochs: best, patience: null } });
  assert.deepEqual(stopped.weights, rerun.weights);
});

test('patience without a validation split is refused', async () => {
  const all = clusters(20, 4, 2, 1, 1);
  await assert.rejects(
    train({ data: { train: all, featureWidth: 4, classes: 2 }, head: { kind: 'linear' }, spec: { patience: 2 } }),
    { name: 'SpecError', message: 'early stopping (patience) needs a validation split' },
  );
});

test('class weights shift predictions towards the rare class', async () => {
  const width = 4;
  // 10% positives, overlapping classes.
  const classOf = (i: number) => (i % 10 === 0 ? 1 : 0);
  const trainSet = clusters(1000, width, 2, 21, 0.4, classOf);
  const testSet = clusters(1000, width, 2, 22, 0.4, classOf);
  const recallOfRare = async (classWeights: 'balanced' | null) => {
    const result = await train({
      data: { train: trainSet, featureWidth: width, classes: 2 },
      head: { kind: 'linear' },
      spec: { engine: 'typescript', epochs: 15, lr: 0.02, classWeights },
    });
    const { labels } = await predict(result.weights, testSet.features, { engine: 'typescript' });
    let hits = 0, rare = 0, predictedRare = 0;
    testSet.labels.forEach((y, i) => {
      if (labels[i] === 1) predictedRare++;
      if (y === 1) {
        rare++;
        if (labels[i] === 1) hits++;
      }
    });
    return { recall: hits / rare, predictedRare, weights: result.classWeights };
  };
  const plain = await recallOfRare(null);
  const balanced = await recallOfRare('balanced');
  assert.deepEqual(plain.weights, [1, 1]);
  assert.deepEqual(balanced.weights, [1000 / (2 * 900), 1000 / (2 * 100)]);
  assert.ok(plain.recall < 0.3, `unweighted recall of the rare class ${plain.recall}`);
  assert.ok(balanced.recall > plain.recall + 0.3, `balanced recall ${balanced.recall} vs ${plain.recall}`);
  assert.ok(balanced.predictedRare > 2 * plain.predictedRare);
});

test('a separable problem reaches ~100% accuracy on both engines', async () => {
  const width = 16;
  const all = clusters(600, width, 4, 31, 3);
  const mlp: HeadSpec = { kind: 'mlp', hidden: [16], dropout: 0.1 };
  const cases: ['typescript' | 'onnx', HeadSpec][] = [
    ['typescript', { kind: 'linear' }],
    ['onnx', { kind: 'linear' }],
    ['typescript', mlp],
    ['onnx', mlp],
  ];
  for (const [engine, head] of cases) {
    const result = await train({
      data: { ...all, featureWidth: width, classes: 4, trainIndices: Array.from({ length: 500 }, (_, i) => i), valIndices: Array.from({ length: 100 }, (_, i) => 500 + i) },
      head,
      spec: { engine, epochs: 8, lr: 0.01, batchSize: 32 },
    });
    const last = result.history[result.history.length - 1]!;
    assert.ok(last.valAccuracy! >= 0.99, `${engine} ${head.kind}: validation accuracy ${last.valAccuracy}`);
    assert.ok(last.trainLoss < result.history[0]!.trainLoss);
  }
});

test("'auto' picks the engine from the head's size", () => {
  const auto = { engine: 'auto', device: 'cpu' } as const;
  assert.equal(chooseEngine(auto, [64, 2], 64, 125000).engine, 'typescript');
  assert.equal(chooseEngine(auto, [512, 2], 64, 125000).engine, 'typescript');
  assert.equal(chooseEngine(auto, [2048, 2], 64, 125000).engine, 'onnx');
  assert.equal(chooseEngine(auto, [1280, 10], 64, 125000).engine, 'onnx');
  assert.equal(chooseEngine(auto, [1280, 512, 10], 64, 125000).engine, 'onnx');
  // With little data the ONNX sessions' setup is not worth it.
  assert.equal(chooseEngine(auto, [1280, 10], 64, 500).engine, 'typescript');
  assert.equal(chooseEngine({ engine: 'auto', device: 'cuda' }, [64, 2], 64, 125000).engine, 'onnx');
  assert.throws(() => chooseEngine({ engine: 'typescript', device: 'cuda' }, [64, 2], 64, 1000), /device 'cuda' needs engine 'onnx'/);
});

test("device 'cuda' without the CUDA provider fails with instructions", async () => {
  const all = clusters(20, 4, 2, 1, 1);
  await assert.rejects(
    train({ data: { train: all, featureWidth: 4, classes: 2 }, head: { kind: 'linear' }, spec: { device: 'cuda', epochs: 1 } }),
    {
      name: 'CudaUnavailableError',
      // The one CUDA error of src/onnx/runtime.ts, the same for training and feature extraction.
      message: new RegExp(
        '^The CUDA execution provider is not installed or cannot load \\(.+\\), so the training graph cannot run on the GPU\\. ' +
          "To use an NVIDIA GPU \\(Linux x64 with its driver, CUDA 12 and cuDNN 9\\), install onnxruntime-node's CUDA provider once, " +
          "with network access \\(this project's installs run no install scripts\\): " +
          '`ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node --ignore-scripts=false`\\. ' +
          "Otherwise use device 'cpu'\\.$",
      ),
    },
  );
});

test('training stops when its signal is aborted', async () => {
  const all = clusters(200, 6, 2, 3, 1);
  const controller = new AbortController();
  const epochs: number[] = [];
  await assert.rejects(
    train({
      data: { train: all, featureWidth: 6, classes: 2 },
      head: { kind: 'linear' },
      spec: { engine: 'typescript', epochs: 50 },
      signal: controller.signal,
      onEpoch: (m) => {
        epochs.push(m.epoch);
        if (m.epoch === 2) controller.abort();
      },
    }),
    { name: 'AbortError' },
  );
  assert.deepEqual(epochs, [1, 2]);
});

test('bad data is refused with clear messages', async () => {
  const head: HeadSpec = { kind: 'linear' };
  await assert.rejects(
    train({ data: { train: { features: new Float32Array(10), labels: [0, 1] }, featureWidth: 4, classes: 2 }, head }),
    /train\.features: 10 values is not a whole number of 4-wide vectors/,
  );
  await assert.rejects(
    train({ data: { train: { features: new Float32Array(8), labels: [0, 2] }, featureWidth: 4, classes: 2 }, head }),
    /train\.labels\[1\] is 2, outside the classes 0…1/,
  );
  await assert.rejects(
    train({ data: { features: new Float32Array(8), labels: [0, 1], featureWidth: 4, classes: 2, trainIndices: [0, 5] }, head }),
    /trainIndices\[1\] is 5, not a row index below 2/,
  );
  await assert.rejects(
    train({ data: { train: { features: new Float32Array(8), labels: [0, 0] }, featureWidth: 4, classes: 2 }, head, spec: { classWeights: 'balanced' } }),
    /classWeights 'balanced' needs every class in the training set; no samples of class 1/,
  );
});
