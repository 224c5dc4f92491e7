// Merging a cut backbone with a trained head into one classifier that outputs probabilities.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { attr, buildModel } from '../src/onnx/builder.js';
import { OnnxModelError, defaultOpset, encodeModel, parseModel } from '../src/onnx/model.js';
import { cutAtFeatures } from '../src/onnx/cut.js';
import { type DenseLayer, type HeadWeights, mergeBackboneAndHead, readLabels } from '../src/onnx/merge.js';
import { seededTensors } from './support/seeded-tensors.js';

const { randoms, floats } = seededTensors(11);

/** A small classifier (Conv → Relu → GlobalAveragePool → Flatten → Gemm), cut into a 4-feature extractor. */
async function featureExtractor(options: { opset?: number; irVersion?: number; metadata?: Record<string, string> } = {}) {
  const classifier = buildModel({
    opset: options.opset ?? 13,
    irVersion: options.irVersion,
    metadata: options.metadata,
    nodes: [
      { op: 'Conv', name: 'conv', inputs: ['image', 'conv.w'], outputs: ['c'], attrs: { pads: attr.ints([1, 1, 1, 1]) } },
      { op: 'Relu', name: 'relu', inputs: ['c'], outputs: ['r'] },
      { op: 'GlobalAveragePool', name: 'gap', inputs: ['r'], outputs: ['p'] },
      { op: 'Flatten', name: 'flatten', inputs: ['p'], outputs: ['f'], attrs: { axis: attr.int(1) } },
      { op: 'Gemm', name: 'fc', inputs: ['f', 'fc.w', 'fc.b'], outputs: ['logits'], attrs: { transB: attr.int(1) } },
    ],
    inputs: [{ name: 'image', type: 'float32', dims: ['N', 3, 8, 8] }],
    outputs: [{ name: 'logits', type: 'float32', dims: ['N', 10] }],
    initializers: [floats('conv.w', [4, 3, 3, 3]), floats('fc.w', [10, 4]), floats('fc.b', [10])],
  });
  return (await cutAtFeatures(classifier)).bytes;
}

const dense = (inFeatures: number, outFeatures: number): DenseLayer => ({
  weight: randoms(inFeatures * outFeatures),
  bias: randoms(outFeatures),
  inFeatures,
  outFeatures,
});

async function run(bytes: Uint8Array, input: ort.Tensor): Promise<Record<string, ort.Tensor>> {
  const session = await ort.InferenceSession.create(bytes);
  try {
    return await session.run({ image: input });
  } finally {
    await session.release();
  }
}

/** The head applied in plain TypeScript: (W·x + b, ReLU between layers), then softmax. */
function headInTypeScript(head: HeadWeights, features: Float32Array, batch: number): number[][] {
  const rows: number[][] = [];
  for (let n = 0; n < batch; n++) {
    let x = Array.from(features.subarray(n * head.layers[0]!.inFeatures, (n + 1) * head.layers[0]!.inFeatures));
    head.layers.forEach((layer, i) => {
      const y = Array.from({ length: layer.outFeatures }, (_, o) => {
        let sum = layer.bias[o]!;
        for (let j = 0; j < layer.inFeatures; j++) sum += layer.weight[o * layer.inFeatures + j]! * x[j]!;
        return sum;
      });
      x = i < head.layers.length - 1 ? y.map((v) => Math.max(0, v)) : y;
    });
    const max = Math.max(...x);
    const exps = x.map((v) => Math.exp(v - max));
    const total = exps.reduce((a, b) => a + b, 0);
    rows.push(exps.map((e) => e / total));
  }
  return rows;
}

async function assertMergedMatches(backbone: Uint8Array, head: HeadWeights, labels: string[]) {
  const merged = mergeBackboneAndHead(backbone, head, { labels });
  const input = new ort.Tensor('float32', randoms(3 * 3 * 8 * 8), [3, 3, 8, 8]);
  const { features } = await run(backbone, input);
  const { probabilities } = await run(merged, input);
  assert.deepEqual(probabilities!.dims, [3, labels.length]);
  const expected = headInTypeScript(head, features!.data as Float32Array, 3).flat();
  (probabilities!.data as Float32Array).forEach((p, i) =>
    assert.ok(Math.abs(p - expected[i]!) < 1e-6, `probability ${i}: ${p} vs ${expected[i]}`),
  );
  return merged;
}

test('a one-layer head: probabilities are softmax(W·features + b), labels in the metadata', async () => {
  const backbone = await featureExtractor();
  const merged = await assertMergedMatches(backbone, { layers: [dense(4, 3)] }, ['cat', 'dog', 'bird']);
  const model = parseModel(merged);
  assert.deepEqual(model.graph.outputs.map((o) => [o.name, o.elemType, o.dims]), [['probabilities', 'float32', ['N', 3]]]);
  assert.deepEqual(model.metadata, [{ key: 'labels', value: '["cat","dog","bird"]' }]);
  assert.deepEqual(readLabels(model), ['cat', 'dog', 'bird']);
  assert.deepEqual(
    model.graph.nodes.slice(-2).map((n) => n.opType),
    ['Gemm', 'Softmax'],
  );
});

test('a two-layer head has a ReLU between its layers', async () => {
  const backbone = await featureExtractor();
  const merged = await assertMergedMatches(backbone, { layers: [dense(4, 6), dense(6, 2)] }, ['no', 'yes']);
  assert.deepEqual(
    parseModel(merged).graph.nodes.slice(-4).map((n) => n.opType),
    ['Gemm', 'Relu', 'Gemm', 'Softmax'],
  );
});

test('an opset 11 backbone keeps its opset, and Softmax (axis 1) is still per row', async () => {
  const backbone = await featureExtractor({ opset: 11 });
  const merged = await assertMergedMatches(backbone, { layers: [dense(4, 3)] }, ['a', 'b', 'c']);
  const model = parseModel(merged);
  assert.equal(defaultOpset(model), 11);
  const softmax = model.graph.nodes.at(-1)!;
  assert.deepEqual(softmax.attributes.map(({ name, value }) => [name, value]), [['axis', 1]]);
});

test('other opset imports of the backbone are kept', async () => {
  const model = parseModel(await featureExtractor());
  model.opsetImports.push({ domain: 'com.microsoft', version: 1 });
  const merged = mergeBackboneAndHead(encodeModel(model), { layers: [dense(4, 2)] }, { labels: ['a', 'b'] });
  assert.deepEqual(parseModel(merged).opsetImports, [
    { domain: '', version: 13 },
    { domain: 'com.microsoft', version: 1 },
  ]);
});

test('an IR version 3 backbone gets the head weights listed as graph inputs too, and runs', async () => {
  const backbone = await featureExtractor({ irVersion: 3, opset: 7 });
  const merged = await assertMergedMatches(backbone, { layers: [dense(4, 2)] }, ['a', 'b']);
  const model = parseModel(merged);
  assert.deepEqual(model.graph.inputs.map((v) => v.name), ['image']);
  assert.deepEqual(model.graph.initializerInputs.map((v) => v.name), ['head.0.weight', 'head.0.bias']);
});

test('an existing labels entry is replaced, other metadata kept', async () => {
  const backbone = await featureExtractor({ metadata: { labels: '["old"]', source: 'zoo' } });
  const merged = mergeBackboneAndHead(backbone, { layers: [dense(4, 2)] }, { labels: ['x', 'y'] });
  assert.deepEqual(parseModel(merged).metadata, [
    { key: 'source', value: 'zoo' },
    { key: 'labels', value: '["x","y"]' },
  ]);
});

test('a head that does not fit is refused with what does not fit', async () => {
  const backbone = await featureExtractor();
  const refuse = (head: HeadWeights, labels: string[], why: string) =>
    assert.throws(
      () => mergeBackboneAndHead(backbone, head, { labels }),
      new OnnxModelError(`the trained head does not fit the backbone: ${why}.`),
    );
  refuse({ layers: [dense(5, 2)] }, ['a', 'b'], 'layer 1 of 1 takes 5 inputs but receives 4 backbone features');
  refuse({ layers: [dense(4, 6), dense(5, 2)] }, ['a', 'b'], 'layer 2 of 2 takes 5 inputs but receives 6');
  refuse({ layers: [dense(4, 3)] }, ['a', 'b'], 'it outputs 3 classes but 2 labels were given');
  refuse({ layers: [dense(4, 2)] }, ['a', 'a'], 'the label "a" appears twice');
  refuse({ layers: [{ ...dense(4, 2), weight: new Float32Array(7) }] }, ['a', 'b'], 'layer 1 of 1 has 7 weights, expected 2×4');
  refuse({ layers: [] }, [], 'it has no layers');
});

test('a backbone whose output is not [N, F] float is refused', () => {
  const notFeatures = buildModel({
    nodes: [{ op: 'GlobalAveragePool', inputs: ['image'], outputs: ['p'] }],
    inputs: [{ name: 'image', type: 'float32', dims: ['N', 3, 8, 8] }],
    outputs: [{ name: 'p', type: 'float32', dims: ['N', 3, 1, 1] }],
  });
  assert.throws(
    () => mergeBackboneAndHead(notFeatures, { layers: [dense(3, 2)] }, { labels: ['a', 'b'], source: 'pool.onnx' }),
    new OnnxModelError(
      'pool.onnx outputs "p" as float32 [N, 3, 1, 1]: a feature extractor made by cutAtFeatures has one float32 output [N, F].',
    ),
  );
});
