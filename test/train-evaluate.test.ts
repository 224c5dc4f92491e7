// Using a trained head: evaluation metrics, prediction, and the artifact format.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { evaluate, predict } from '../src/train/evaluate.js';
import { initHead, type HeadWeights } from '../src/train/head.js';
import { classificationMetrics } from '../src/train/metrics.js';
import { Prng } from '../src/train/prng.js';
import { decodeHead, encodeHead, HeadFormatError, type TrainedHead } from '../src/train/serialize.js';

// Identity weights over one-hot features: the prediction is the hot feature.
const identity: HeadWeights = {
  layers: [{ weight: Float32Array.from([1, 0, 0, 0, 1, 0, 0, 0, 1]), bias: new Float32Array(3), inFeatures: 3, outFeatures: 3 }],
};
// (true, predicted) pairs; confusion rows are true classes: [2,1,1] / [0,3,0] / [1,0,2].
const pairs: [number, number][] = [
  [0, 0], [0, 0], [0, 1], [0, 2],
  [1, 1], [1, 1], [1, 1],
  [2, 0], [2, 2], [2, 2],
];
const features = Float32Array.from(pairs.flatMap(([, p]) => [0, 1, 2].map((k) => (k === p ? 1 : 0))));
const labels = pairs.map(([y]) => y);

for (const engine of ['typescript', 'onnx'] as const)
  test(`evaluate on a hand-made example (${engine})`, async () => {
    const result = await evaluate(identity, features, labels, ['cat', 'dog', 'bird'], { engine });
    assert.deepEqual(result.confusion, [[2, 1, 1], [0, 3, 0], [1, 0, 2]]);
    assert.equal(result.accuracy, 7 / 10);
    assert.equal(result.count, 10);
    const expected = [
      // class 0: 2 of 3 predicted "cat" are cats; 2 of 4 cats found.
      { class: 0, name: 'cat', precision: 2 / 3, recall: 2 / 4, f1: 4 / 7, support: 4 },
      // class 1: 3 of 4 predicted "dog" are dogs; all 3 dogs found.
      { class: 1, name: 'dog', precision: 3 / 4, recall: 3 / 3, f1: 6 / 7, support: 3 },
      { class: 2, name: 'bird', precision: 2 / 3, recall: 2 / 3, f1: 2 / 3, support: 3 },
    ];
    result.perClass.forEach((m, c) => {
      const e = expected[c]!;
      assert.deepEqual({ ...m, f1: 0 }, { ...e, f1: 0 });
      assert.ok(Math.abs(m.f1 - e.f1) < 1e-15, `f1 of ${e.name}: ${m.f1} vs ${e.f1}`);
    });
    assert.ok(Math.abs(result.macroF1 - 44 / 63) < 1e-15);
    // Logits are one-hot: the true class has probability e/(e+2) when predicted, 1/(e+2) otherwise.
    assert.ok(Math.abs(result.loss - (Math.log(Math.E + 2) - 0.7)) < 1e-6, `loss ${result.loss}`);
  });

test('classes that never occur nor get predicted score 0, not NaN', () => {
  const m = classificationMetrics([0, 1, 1], [0, 1, 0], 3);
  assert.deepEqual(m.perClass[2], { class: 2, name: '2', precision: 0, recall: 0, f1: 0, support: 0 });
  assert.deepEqual(m.confusion, [[1, 0, 0], [1, 1, 0], [0, 0, 0]]);
  assert.equal(m.macroF1, (2 / 3 + 2 / 3 + 0) / 3);
});

test('predict: both engines give the same classes and probabilities', async () => {
  const width = 8;
  const rows = 2100; // more than one evaluation chunk
  const rng = new Prng(4);
  const x = Float32Array.from({ length: rows * width }, () => rng.uniform() * 4 - 2);
  const weights = initHead({ kind: 'mlp', hidden: [9], dropout: 0, seed: 8 }, width, 4);
  const ts = await predict(weights, x, { engine: 'typescript' });
  const onnx = await predict(weights, x, { engine: 'onnx' });
  assert.equal(ts.labels.length, rows);
  assert.equal(ts.probabilities.length, rows * 4);
  let disagreements = 0;
  for (let i = 0; i < rows; i++) {
    if (ts.labels[i] !== onnx.labels[i]) disagreements++;
    let sum = 0;
    for (let c = 0; c < 4; c++) {
      sum += ts.probabilities[i * 4 + c]!;
      assert.ok(Math.abs(ts.probabilities[i * 4 + c]! - onnx.probabilities[i * 4 + c]!) < 1e-6);
    }
    assert.ok(Math.abs(sum - 1) < 1e-6);
    const p = ts.probabilities.subarray(i * 4, i * 4 + 4);
    assert.equal(ts.labels[i], p.indexOf(Math.max(...p)));
  }
  assert.ok(disagreements <= 1, `${disagreements} rows classified differently (float32 near-ties)`);
});

test('a two-class linear head predicts the same as its logits say', async () => {
  const weights: HeadWeights = {
    layers: [{ weight: Float32Array.from([1, -1, -2, 0.5]), bias: Float32Array.from([0.25, 0]), inFeatures: 2, outFeatures: 2 }],
  };
  const x = Float32Array.from([1, 0, 0, 1, -1, -1]);
  // logits: [1.25, -2], [-0.75, 0.5], [0.25, 1.5]
  const { labels, probabilities } = await predict(weights, x, { engine: 'typescript' });
  assert.deepEqual([...labels], [0, 1, 1]);
  const sigmoid = (t: number) => 1 / (1 + Math.exp(-t));
  const expected = [sigmoid(3.25), sigmoid(-3.25), sigmoid(-1.25), sigmoid(1.25), sigmoid(-1.25), sigmoid(1.25)];
  probabilities.forEach((p, j) => assert.ok(Math.abs(p - expected[j]!) < 1e-7));
});

test('the head artifact round-trips weights, spec, class names and metadata', () => {
  const weights = initHead({ kind: 'mlp', hidden: [5, 3], dropout: 0.2, seed: 1 }, 7, 2);
  const head: TrainedHead = {
    spec: { kind: 'mlp', hidden: [5, 3], dropout: 0.2, seed: 1 },
    classes: ['cat', 'dog'],
    weights,
    metadata: { bestEpoch: 4, valAccuracy: 0.97 },
  };
  const bytes = encodeHead(head);
  const parameters = 7 * 5 + 5 + 5 * 3 + 3 + 3 * 2 + 2;
  const headerLength = new DataView(bytes.buffer).getUint32(8, true);
  assert.equal(bytes.length, ((12 + headerLength + 3) & ~3) + parameters * 4);
  assert.equal(new TextDecoder().decode(bytes.subarray(0, 6)), 'TLHEAD');
  const decoded = decodeHead(bytes);
  assert.deepEqual(decoded, head);
  assert.deepEqual(
    decoded.weights.layers.map((l) => Object.keys(l).sort()),
    [0, 1, 2].map(() => ['bias', 'inFeatures', 'outFeatures', 'weight']),
  );
  // Decoding works from any byte offset (e.g. a slice of a larger file buffer).
  const shifted = new Uint8Array(bytes.length + 1);
  shifted.set(bytes, 1);
  assert.deepEqual(decodeHead(shifted.subarray(1)), head);
});

test('corrupt head artifacts are refused', () => {
  const bytes = encodeHead({ spec: { kind: 'linear' }, classes: ['a', 'b'], weights: initHead({ kind: 'linear' }, 3, 2) });
  assert.throws(() => decodeHead(bytes.subarray(0, bytes.length - 4)), (e: Error) => e instanceof HeadFormatError && /expected/.test(e.message));
  assert.throws(() => decodeHead(new Uint8Array(20)), /not a tlpipe head file/);
  assert.throws(
    () => encodeHead({ spec: { kind: 'linear' }, classes: ['a'], weights: initHead({ kind: 'linear' }, 3, 2) }),
    /1 class names for a head with 2 outputs/,
  );
});
