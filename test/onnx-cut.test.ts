// Cutting classifiers into feature extractors, on small models built here:
// head detection, the values of the features, pruning, named cuts and errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { attr, buildModel, type ModelSpec, type NodeSpec, type TensorInit } from '../src/onnx/builder.js';
import { OnnxModelError, encodeModel, makeValueInfo, parseModel } from '../src/onnx/model.js';
import { cutAtFeatures } from '../src/onnx/cut.js';
import { seededTensors } from './support/seeded-tensors.js';

// ---- small models

const { randoms, floats } = seededTensors(7);

/** image [N,3,8,8] → Conv(4 channels) → Relu: the trunk every small model shares. */
const TRUNK: NodeSpec[] = [
  { op: 'Conv', name: 'conv', inputs: ['image', 'conv.w', 'conv.b'], outputs: ['conv_out'], attrs: { pads: attr.ints([1, 1, 1, 1]) } },
  { op: 'Relu', name: 'relu', inputs: ['conv_out'], outputs: ['relu_out'] },
];
const TRUNK_WEIGHTS = [floats('conv.w', [4, 3, 3, 3]), floats('conv.b', [4])];
const IMAGE = { name: 'image', type: 'float32' as const, dims: ['N', 3, 8, 8] };

function classifier(head: NodeSpec[], headWeights: TensorInit[], output: string, opset = 13): ModelSpec {
  return {
    opset,
    nodes: [...TRUNK, ...head],
    inputs: [IMAGE],
    outputs: [{ name: output, type: 'float32', dims: ['N', 5] }],
    initializers: [...TRUNK_WEIGHTS, ...headWeights],
  };
}

/** Conv → Relu → GlobalAveragePool → Flatten → Gemm → Softmax. */
const gemmModel = buildModel(
  classifier(
    [
      { op: 'GlobalAveragePool', name: 'gap', inputs: ['relu_out'], outputs: ['pooled'] },
      { op: 'Flatten', name: 'flatten', inputs: ['pooled'], outputs: ['flat'], attrs: { axis: attr.int(1) } },
      { op: 'Gemm', name: 'fc', inputs: ['flat', 'fc.w', 'fc.b'], outputs: ['logits'], attrs: { transB: attr.int(1) } },
      { op: 'Softmax', name: 'softmax', inputs: ['logits'], outputs: ['prob'], attrs: { axis: attr.int(1) } },
    ],
    [floats('fc.w', [5, 4]), floats('fc.b', [5])],
    'prob',
  ),
);

/** Conv → Relu → GlobalAveragePool → Reshape([0, -1]) → MatMul → Add. */
const matMulModel = buildModel(
  classifier(
    [
      { op: 'GlobalAveragePool', name: 'gap', inputs: ['relu_out'], outputs: ['pooled'] },
      { op: 'Reshape', name: 'reshape', inputs: ['pooled', 'shape'], outputs: ['reshaped'] },
      { op: 'MatMul', name: 'matmul', inputs: ['reshaped', 'fc.w'], outputs: ['mm'] },
      { op: 'Add', name: 'add', inputs: ['mm', 'fc.b'], outputs: ['logits'] },
    ],
    [{ name: 'shape', type: 'int64', dims: [2], data: new BigInt64Array([0n, -1n]) }, floats('fc.w', [4, 5]), floats('fc.b', [5])],
    'logits',
  ),
);

/** Conv → Relu → ReduceMean over H and W (keepdims=0) → Gemm (weight [in, out]). */
const reduceMeanModel = buildModel(
  classifier(
    [
      {
        op: 'ReduceMean',
        name: 'mean',
        inputs: ['relu_out'],
        outputs: ['pooled'],
        attrs: { axes: attr.ints([2, 3]), keepdims: attr.int(0) },
      },
      { op: 'Gemm', name: 'fc', inputs: ['pooled', 'fc.w', 'fc.b'], outputs: ['logits'] },
    ],
    [floats('fc.w', [4, 5]), floats('fc.b', [5])],
    'logits',
  ),
);

/** A squeeze-excitation pooling inside the trunk, then the real one, then a two-layer head. */
const twoLayerHeadModel = buildModel(
  classifier(
    [
      { op: 'GlobalAveragePool', name: 'se_pool', inputs: ['relu_out'], outputs: ['se_pooled'] },
      { op: 'Sigmoid', name: 'se_gate', inputs: ['se_pooled'], outputs: ['gate'] },
      { op: 'Mul', name: 'se_scale', inputs: ['relu_out', 'gate'], outputs: ['excited'] },
      { op: 'GlobalAveragePool', name: 'gap', inputs: ['excited'], outputs: ['pooled'] },
      { op: 'Flatten', name: 'flatten', inputs: ['pooled'], outputs: ['flat'], attrs: { axis: attr.int(1) } },
      { op: 'Gemm', name: 'fc1', inputs: ['flat', 'fc1.w', 'fc1.b'], outputs: ['hidden'], attrs: { transB: attr.int(1) } },
      { op: 'Relu', name: 'fc1_relu', inputs: ['hidden'], outputs: ['hidden_relu'] },
      { op: 'Gemm', name: 'fc2', inputs: ['hidden_relu', 'fc2.w', 'fc2.b'], outputs: ['logits'], attrs: { transB: attr.int(1) } },
    ],
    [floats('fc1.w', [6, 4]), floats('fc1.b', [6]), floats('fc2.w', [5, 6]), floats('fc2.b', [5])],
    'logits',
  ),
);

/**
 * A quantized classifier in the QLinear style of the MobileNetV2 fixture:
 * QuantizeLinear → QLinearGlobalAveragePool (uint8) → Flatten → QLinearMatMul → DequantizeLinear.
 */
function quantizedModel(): Uint8Array {
  const scalar = (name: string, type: 'float32' | 'uint8', value: number): TensorInit => ({
    name,
    type,
    dims: [],
    data: type === 'float32' ? new Float32Array([value]) : new Uint8Array([value]),
  });
  const spec: ModelSpec = {
    opset: 13,
    nodes: [
      { op: 'QuantizeLinear', name: 'quantize', inputs: ['image', 'x.s', 'x.zp'], outputs: ['xq'] },
      {
        op: 'QLinearGlobalAveragePool',
        domain: 'com.microsoft',
        name: 'qgap',
        inputs: ['xq', 'x.s', 'x.zp', 'p.s', 'p.zp'],
        outputs: ['pooled_q'],
      },
      { op: 'Flatten', name: 'flatten', inputs: ['pooled_q'], outputs: ['flat_q'], attrs: { axis: attr.int(1) } },
      { op: 'QLinearMatMul', name: 'qfc', inputs: ['flat_q', 'p.s', 'p.zp', 'w.q', 'w.s', 'w.zp', 'y.s', 'y.zp'], outputs: ['y_q'] },
      { op: 'DequantizeLinear', name: 'dequantize', inputs: ['y_q', 'y.s', 'y.zp'], outputs: ['logits'] },
    ],
    inputs: [IMAGE],
    outputs: [{ name: 'logits', type: 'float32', dims: ['N', 5] }],
    initializers: [
      scalar('x.s', 'float32', 1 / 64),
      scalar('x.zp', 'uint8', 128),
      scalar('p.s', 'float32', 1 / 100),
      scalar('p.zp', 'uint8', 120),
      { name: 'w.q', type: 'uint8', dims: [3, 5], data: Uint8Array.from({ length: 15 }, (_, i) => 100 + 7 * i) },
      scalar('w.s', 'float32', 0.02),
      scalar('w.zp', 'uint8', 128),
      scalar('y.s', 'float32', 0.05),
      scalar('y.zp', 'uint8', 128),
    ],
  };
  const model = parseModel(buildModel(spec));
  model.opsetImports.push({ domain: 'com.microsoft', version: 1 });
  return encodeModel(model);
}

// ---- running them

const BATCH = 2;
const image = () => new ort.Tensor('float32', randoms(BATCH * 3 * 8 * 8), [BATCH, 3, 8, 8]);

async function run(bytes: Uint8Array, feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
  const session = await ort.InferenceSession.create(bytes);
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

/** The model with one of its intermediate tensors exposed as an extra output. */
function exposing(bytes: Uint8Array, name: string, type: 'float32' | 'uint8', dims: (number | string)[]): Uint8Array {
  const model = parseModel(bytes);
  model.graph.outputs.push(makeValueInfo({ name, type, dims }));
  return encodeModel(model);
}

async function assertFeaturesEqual(cutBytes: Uint8Array, expected: ArrayLike<number>, input: ort.Tensor, width: number) {
  const { features } = await run(cutBytes, { image: input });
  assert.deepEqual(features!.dims, [BATCH, width]);
  assert.equal(features!.type, 'float32');
  assert.deepEqual(Array.from(features!.data as Float32Array), Array.from(expected));
}

const opTypes = (bytes: Uint8Array) => parseModel(bytes).graph.nodes.map((n) => n.opType);
const initializerNames = (bytes: Uint8Array) => parseModel(bytes).graph.initializers.map((t) => t.name);

// ---- detection and values

test('Gemm head: cut at the flattened pooling, head and its weights removed', async () => {
  const cut = await cutAtFeatures(gemmModel, { source: 'tiny.onnx' });
  assert.equal(cut.featureName, 'features');
  assert.equal(cut.featureWidth, 4);
  assert.equal(cut.removedNodes, 2);
  assert.equal(cut.cutAfter, 'tensor "flat" (output of Flatten "flatten"), before the classifier Gemm "fc"');
  assert.deepEqual(opTypes(cut.bytes), ['Conv', 'Relu', 'GlobalAveragePool', 'Flatten', 'Identity']);
  assert.deepEqual(initializerNames(cut.bytes), ['conv.w', 'conv.b']);
  const outputs = parseModel(cut.bytes).graph.outputs;
  assert.deepEqual(outputs.map((o) => [o.name, o.elemType, o.dims]), [['features', 'float32', ['N', 4]]]);

  const input = image();
  const { pooled } = await run(exposing(gemmModel, 'pooled', 'float32', ['N', 4, 1, 1]), { image: input });
  await assertFeaturesEqual(cut.bytes, pooled!.data as Float32Array, input, 4);
});

test('MatMul + Add head: cut at the reshaped pooling', async () => {
  const cut = await cutAtFeatures(matMulModel);
  assert.equal(cut.cutAfter, 'tensor "reshaped" (output of Reshape "reshape"), before the classifier MatMul "matmul"');
  assert.equal(cut.featureWidth, 4);
  assert.equal(cut.removedNodes, 2);
  assert.deepEqual(opTypes(cut.bytes), ['Conv', 'Relu', 'GlobalAveragePool', 'Reshape', 'Identity']);
  assert.deepEqual(initializerNames(cut.bytes), ['conv.w', 'conv.b', 'shape']);
  const input = image();
  const { pooled } = await run(exposing(matMulModel, 'pooled', 'float32', ['N', 4, 1, 1]), { image: input });
  await assertFeaturesEqual(cut.bytes, pooled!.data as Float32Array, input, 4);
});

test('ReduceMean over the spatial axes counts as global pooling; its mean is the feature', async () => {
  const cut = await cutAtFeatures(reduceMeanModel);
  assert.equal(cut.cutAfter, 'tensor "pooled" (output of ReduceMean "mean"), before the classifier Gemm "fc"');
  assert.equal(cut.featureWidth, 4);
  assert.equal(cut.removedNodes, 1);
  // The mean computed independently, from the Relu output.
  const input = image();
  const { relu_out } = await run(exposing(reduceMeanModel, 'relu_out', 'float32', ['N', 4, 8, 8]), { image: input });
  const maps = relu_out!.data as Float32Array;
  const expected = Array.from({ length: BATCH * 4 }, (_, i) => {
    let sum = 0;
    for (let j = 0; j < 64; j++) sum += maps[i * 64 + j]!;
    return sum / 64;
  });
  const { features } = await run(cut.bytes, { image: input });
  (features!.data as Float32Array).forEach((v, i) => assert.ok(Math.abs(v - expected[i]!) < 1e-6, `feature ${i}`));
});

test('a channels-last model: ReduceMean over axes 1 and 2 is its global pooling', async () => {
  const nhwc = buildModel({
    opset: 13,
    nodes: [
      // A 1×1 convolution written as a MatMul over the channel axis, as converters of channels-last models do.
      { op: 'MatMul', name: 'pointwise', inputs: ['image', 'pw.w'], outputs: ['maps'] },
      { op: 'Relu', name: 'relu', inputs: ['maps'], outputs: ['relu_out'] },
      {
        op: 'ReduceMean',
        name: 'mean',
        inputs: ['relu_out'],
        outputs: ['pooled'],
        attrs: { axes: attr.ints([1, 2]), keepdims: attr.int(0) },
      },
      { op: 'MatMul', name: 'fc', inputs: ['pooled', 'fc.w'], outputs: ['mm'] },
      { op: 'Add', name: 'bias', inputs: ['mm', 'fc.b'], outputs: ['logits'] },
      { op: 'Softmax', name: 'softmax', inputs: ['logits'], outputs: ['prob'], attrs: { axis: attr.int(-1) } },
    ],
    inputs: [{ name: 'image', type: 'float32', dims: [1, 8, 8, 3] }],
    outputs: [{ name: 'prob', type: 'float32', dims: [1, 5] }],
    initializers: [floats('pw.w', [3, 4]), floats('fc.w', [4, 5]), floats('fc.b', [5])],
  });
  const cut = await cutAtFeatures(nhwc);
  assert.equal(cut.cutAfter, 'tensor "pooled" (output of ReduceMean "mean"), before the classifier MatMul "fc"');
  assert.equal(cut.featureWidth, 4);
  assert.equal(cut.removedNodes, 3);
  assert.deepEqual(opTypes(cut.bytes), ['MatMul', 'Relu', 'ReduceMean', 'Identity']);
  assert.deepEqual(parseModel(cut.bytes).graph.outputs[0]!.dims, [1, 4]);
  const input = new ort.Tensor('float32', randoms(8 * 8 * 3), [1, 8, 8, 3]);
  const { pooled } = await run(exposing(nhwc, 'pooled', 'float32', [1, 4]), { image: input });
  const { features } = await run(cut.bytes, { image: input });
  assert.deepEqual(Array.from(features!.data as Float32Array), Array.from(pooled!.data as Float32Array));
});

test('with a squeeze-excitation pooling and a two-layer head, the cut is before the last dense layer', async () => {
  const cut = await cutAtFeatures(twoLayerHeadModel);
  assert.equal(
    cut.cutAfter,
    'tensor "hidden_relu" (output of Relu "fc1_relu"), before the classifier Gemm "fc2"',
  );
  assert.equal(cut.featureWidth, 6);
  assert.equal(cut.removedNodes, 1);
});

test('quantized features are dequantized with the pooling output scale and zero point', async () => {
  const model = quantizedModel();
  const cut = await cutAtFeatures(model);
  assert.equal(cut.cutAfter, 'tensor "flat_q" (output of Flatten "flatten"), before the classifier QLinearMatMul "qfc"');
  assert.equal(cut.featureWidth, 3);
  assert.equal(cut.removedNodes, 2);
  const nodes = parseModel(cut.bytes).graph.nodes;
  assert.deepEqual(
    nodes.map((n) => [n.opType, n.inputs]),
    [
      ['QuantizeLinear', ['image', 'x.s', 'x.zp']],
      ['QLinearGlobalAveragePool', ['xq', 'x.s', 'x.zp', 'p.s', 'p.zp']],
      ['Flatten', ['pooled_q']],
      ['DequantizeLinear', ['flat_q', 'p.s', 'p.zp']],
    ],
  );
  assert.deepEqual(initializerNames(cut.bytes), ['x.s', 'x.zp', 'p.s', 'p.zp']);

  const input = image();
  const { pooled_q } = await run(exposing(model, 'pooled_q', 'uint8', ['N', 3, 1, 1]), { image: input });
  const expected = Array.from(pooled_q!.data as Uint8Array, (q) => Math.fround((q - 120) * Math.fround(1 / 100)));
  const { features } = await run(cut.bytes, { image: input });
  assert.deepEqual(features!.dims, [BATCH, 3]);
  (features!.data as Float32Array).forEach((v, i) => assert.ok(Math.abs(v - expected[i]!) < 1e-6, `feature ${i}`));
});

// ---- named cuts

test('a named 4-D tensor is flattened, and its width learned by running the model once', async () => {
  const cut = await cutAtFeatures(gemmModel, { tensor: 'relu_out' });
  assert.equal(cut.cutAfter, 'tensor "relu_out" (output of Relu "relu")');
  assert.equal(cut.featureWidth, 4 * 8 * 8);
  assert.equal(cut.removedNodes, 4);
  assert.deepEqual(opTypes(cut.bytes), ['Conv', 'Relu', 'Flatten']);
  assert.deepEqual(parseModel(cut.bytes).graph.outputs[0]!.dims, ['N', 256]);
  const input = image();
  const { relu_out } = await run(exposing(gemmModel, 'relu_out', 'float32', ['N', 4, 8, 8]), { image: input });
  await assertFeaturesEqual(cut.bytes, relu_out!.data as Float32Array, input, 256);
});

test('a named tensor that is already the head input gives the same cut as detection', async () => {
  const named = await cutAtFeatures(gemmModel, { tensor: 'flat' });
  const detected = await cutAtFeatures(gemmModel);
  assert.equal(named.featureWidth, 4);
  assert.deepEqual(named.bytes, detected.bytes);
});

test('an unknown tensor name is an error with a suggestion and the last tensors', async () => {
  await assert.rejects(
    cutAtFeatures(gemmModel, { tensor: 'poold', source: 'tiny.onnx' }),
    new OnnxModelError(
      'tiny.onnx has no tensor named "poold". Did you mean "pooled"? Its last tensors are "conv_out", "relu_out", ' +
        '"pooled", "flat", "logits", "prob" (6 in all; a viewer such as Netron shows every name).',
    ),
  );
});

test('cutting at the image input is refused', async () => {
  await assert.rejects(
    cutAtFeatures(gemmModel, { tensor: 'image', source: 'tiny.onnx' }),
    new OnnxModelError('cannot cut tiny.onnx at "image": that is the model\'s input. Name a tensor computed by the network.'),
  );
});

// ---- models that cannot be cut

test('a model without a pooled dense head asks for a tensor name', async () => {
  const noPooling = buildModel(
    classifier(
      [
        { op: 'Flatten', name: 'flatten', inputs: ['relu_out'], outputs: ['flat'], attrs: { axis: attr.int(1) } },
        { op: 'Gemm', name: 'fc', inputs: ['flat', 'fc.w', 'fc.b'], outputs: ['logits'], attrs: { transB: attr.int(1) } },
      ],
      [floats('fc.w', [5, 256]), floats('fc.b', [5])],
      'logits',
    ),
  );
  await assert.rejects(
    cutAtFeatures(noPooling, { source: 'flat.onnx' }),
    new OnnxModelError(
      'could not find the classification head of flat.onnx: no Gemm, MatMul or QLinearMatMul follows a global pooling ' +
        '(GlobalAveragePool, ReduceMean over the spatial axes...). Name the feature tensor to cut at (the `tensor` option); ' +
        'a viewer such as Netron shows the names.',
    ),
  );
});

test('a model that does not take images is refused', async () => {
  const tabular = buildModel({
    nodes: [{ op: 'MatMul', inputs: ['x', 'w'], outputs: ['y'] }],
    inputs: [{ name: 'x', type: 'float32', dims: ['N', 10] }],
    outputs: [{ name: 'y', type: 'float32', dims: ['N', 2] }],
    initializers: [floats('w', [10, 2])],
  });
  await assert.rejects(
    cutAtFeatures(tabular, { source: 'tabular.onnx' }),
    new OnnxModelError(
      'tabular.onnx does not take an image: its input "x" has shape [N, 10] (rank 2, not 4). An image input is a ' +
        'float32 tensor [N, 3, H, W] (NCHW) or [N, H, W, 3] (NHWC); use an image classification model.',
    ),
  );
});

test('bytes that are not a model are refused before anything else', async () => {
  await assert.rejects(
    cutAtFeatures(new TextEncoder().encode('not a model'), { source: 'notes.txt' }),
    (e: unknown) => e instanceof OnnxModelError && e.message.startsWith('notes.txt is not an ONNX model: it looks like a text file.'),
  );
});
