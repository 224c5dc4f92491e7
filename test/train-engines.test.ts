// The two engines are independent implementations of the same training step
// (typed-array loops vs. an ONNX graph); the same seed must give the same history.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { HeadSpec } from '../src/train/head.js';
import { Prng } from '../src/train/prng.js';
import type { TrainSpec } from '../src/train/spec.js';
import { train, type EpochMetrics, type TrainOptions } from '../src/train/train.js';

function clusters(rows: number, width: number, classes: number, seed: number) {
  const rng = new Prng(seed);
  const features = new Float32Array(rows * width);
  const labels = new Int32Array(rows);
  for (let i = 0; i < rows; i++) {
    const y = rng.below(classes);
    labels[i] = y;
    for (let k = 0; k < width; k++) features[i * width + k] = rng.uniform() - 0.5 + (k % classes === y ? 0.6 : 0);
  }
  return { features, labels };
}

function relative(a: number, b: number): number {
  return Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b), 1e-12);
}

function compareHistories(a: EpochMetrics[], b: EpochMetrics[], lossTolerance: number, accuracyTolerance: number): void {
  assert.equal(a.length, b.length);
  a.forEach((x, e) => {
    const y = b[e]!;
    assert.ok(relative(x.trainLoss, y.trainLoss) <= lossTolerance, `epoch ${e + 1} train loss ${x.trainLoss} vs ${y.trainLoss}`);
    assert.ok(relative(x.valLoss!, y.valLoss!) <= lossTolerance, `epoch ${e + 1} val loss ${x.valLoss} vs ${y.valLoss}`);
    assert.ok(Math.abs(x.trainAccuracy - y.trainAccuracy) <= accuracyTolerance, `epoch ${e + 1} train accuracy`);
    assert.ok(Math.abs(x.valAccuracy! - y.valAccuracy!) <= accuracyTolerance, `epoch ${e + 1} val accuracy`);
    assert.equal(x.lr, y.lr);
  });
}

const heads: [string, HeadSpec][] = [
  ['linear', { kind: 'linear', seed: 3 }],
  ['mlp with dropout', { kind: 'mlp', hidden: [12, 7], dropout: 0.25, seed: 4 }],
];
const optimisers: [string, Partial<TrainSpec>][] = [
  ['adam + L2 weight decay', { optimizer: 'adam', lr: 0.01, weightDecay: 0.01 }],
  ['adamw', { optimizer: 'adamw', lr: 0.01, weightDecay: 0.05 }],
  ['sgd + momentum', { optimizer: 'sgd', lr: 0.05, momentum: 0.9, dampening: 0.1, weightDecay: 0.001 }],
  ['sgd + nesterov', { optimizer: 'sgd', lr: 0.05, momentum: 0.8, nesterov: true }],
];

for (const classes of [2, 3])
  for (const [headName, head] of heads)
    for (const [optName, opt] of optimisers)
      test(`engines agree: ${headName}, ${optName}, ${classes} classes`, async () => {
        const width = 13;
        const all = clusters(240, width, classes, classes * 10 + 1);
        const data: TrainOptions['data'] = {
          ...all,
          featureWidth: width,
          classes,
          trainIndices: Array.from({ length: 200 }, (_, i) => i),
          valIndices: Array.from({ length: 40 }, (_, i) => 200 + i),
        };
        // Raw features: these tests pin the engines' arithmetic, which standardisation would only rescale.
        const spec: Partial<TrainSpec> = {
          standardize: false,
          ...opt,
          epochs: 4,
          batchSize: 24,
          seed: 9,
          classWeights: classes === 2 ? [1, 1.7] : 'balanced',
          lrSchedule: 'step',
          lrStepEpochs: 2,
          lrGamma: 0.5,
        };
        const ts = await train({ data, head, spec: { ...spec, engine: 'typescript' } });
        const onnx64 = await train({ data, head, spec: { ...spec, engine: 'onnx' }, precision: 'float64' });
        const onnx32 = await train({ data, head, spec: { ...spec, engine: 'onnx' } });
        assert.equal(ts.engine, 'typescript');
        assert.equal(onnx32.engine, 'onnx');
        // float64 graph vs float64 loops: only summation order differs.
        compareHistories(ts.history, onnx64.history, 1e-12, 0);
        // float32 graph: rounding of float32 arithmetic, measured ~1e-6 relative.
        compareHistories(ts.history, onnx32.history, 1e-5, 2 / 40);
        ts.weights.layers.forEach((layer, l) => {
          const other = onnx64.weights.layers[l]!;
          for (let j = 0; j < layer.weight.length; j++)
            assert.ok(Math.abs(layer.weight[j]! - other.weight[j]!) <= 1e-6 * Math.max(1, Math.abs(layer.weight[j]!)), `layer ${l} weight ${j}`);
        });
      });

test('one Adam step on a 2×2 problem, worked out by hand', async () => {
  // Two features, two classes, a batch of two samples, class weights 1 and 3.
  const W = [0.1, -0.2, 0.3, 0.4]; // rows: class 0, class 1
  const b = [0.05, -0.05];
  const x = [[1, 2], [-1, 0.5]];
  const y = [0, 1];
  const cw = [1, 3];
  const lr = 0.1, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;

  // Forward: z = W·x + b, softmax, weighted cross-entropy mean.
  const z = x.map(([a, c]) => [W[0]! * a! + W[1]! * c! + b[0]!, W[2]! * a! + W[3]! * c! + b[1]!]);
  const p = z.map(([z0, z1]) => {
    const e0 = Math.exp(z0!), e1 = Math.exp(z1!);
    return [e0 / (e0 + e1), e1 / (e0 + e1)];
  });
  const w = y.map((c) => cw[c]!);
  const wSum = w[0]! + w[1]!;
  const loss = (-w[0]! * Math.log(p[0]![y[0]!]!) - w[1]! * Math.log(p[1]![y[1]!]!)) / wSum;
  // Gradients: dz = (p − onehot)·w/Σw; dW = Σ dz ⊗ x; db = Σ dz.
  const dz = p.map((row, i) => row.map((v, c) => ((v - (c === y[i] ? 1 : 0)) * w[i]!) / wSum));
  const gW = [0, 1].flatMap((c) => [0, 1].map((k) => dz[0]![c]! * x[0]![k]! + dz[1]![c]! * x[1]![k]!));
  const gb = [0, 1].map((c) => dz[0]![c]! + dz[1]![c]!);
  // Adam, step 1: m = (1−β1)g, v = (1−β2)g², p −= lr/(1−β1) · m / (sqrt(v)/sqrt(1−β2) + eps).
  const adamStep = (param: number, g: number) => {
    const m = (1 - beta1) * g;
    const v = (1 - beta2) * g * g;
    return param - (lr / (1 - beta1)) * (m / (Math.sqrt(v) / Math.sqrt(1 - beta2) + eps));
  };
  const expectedW = W.map((v, j) => adamStep(v, gW[j]!));
  const expectedB = b.map((v, j) => adamStep(v, gb[j]!));
  // Each parameter moves by almost exactly lr against its gradient's sign on the first step.
  expectedW.forEach((v, j) => assert.ok(Math.abs(Math.abs(v - W[j]!) - lr) < 1e-6));

  const data: TrainOptions['data'] = {
    train: { features: Float32Array.from(x.flat()), labels: y },
    featureWidth: 2,
    classes: 2,
  };
  const initialWeights = { layers: [{ weight: Float32Array.from(W), bias: Float32Array.from(b), inFeatures: 2, outFeatures: 2 }] };
  const spec: Partial<TrainSpec> = { standardize: false, optimizer: 'adam', lr, betas: [beta1, beta2], eps, epochs: 1, batchSize: 2, classWeights: cw };
  for (const [engine, precision, tolerance] of [
    ['typescript', undefined, 1e-7],
    ['onnx', 'float64', 1e-7],
    ['onnx', 'float32', 1e-6],
  ] as const) {
    // The initial weights are float32; recompute the expectation from the same rounded values.
    const result = await train({ data, head: { kind: 'linear' }, spec: { ...spec, engine }, initialWeights, precision });
    const layer = result.weights.layers[0]!;
    const close = (a: number, e: number) => Math.abs(a - e) <= tolerance;
    const w32 = W.map(Math.fround), b32 = b.map(Math.fround);
    layer.weight.forEach((v, j) => assert.ok(close(v, expectedW[j]! + (w32[j]! - W[j]!)), `${engine} ${precision ?? ''} W[${j}] = ${v}, expected ${expectedW[j]}`));
    layer.bias.forEach((v, j) => assert.ok(close(v, expectedB[j]! + (b32[j]! - b[j]!)), `${engine} ${precision ?? ''} b[${j}] = ${v}, expected ${expectedB[j]}`));
    assert.ok(Math.abs(result.history[0]!.trainLoss - loss) < 1e-6, `${engine} loss ${result.history[0]!.trainLoss} vs ${loss}`);
  }
});
