// Static int8 quantization (src/onnx/quantize.ts) on small float graphs built
// here: the written files are checked with onnxruntime itself (it runs them,
// and its CPU optimizer turns them into QLinear kernels) and with the
// project's own protobuf reader (int8 weights, per-channel scales, int32
// biases, no leftover float Conv), and every refusal has its exact message.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { attr, buildModel, type ModelSpec, type NodeSpec, type TensorInit } from '../src/onnx/builder.js';
import { type OnnxModel, type OnnxNode, defaultOpset, encodeModel, getAttribute, parseModel, tensorValues } from '../src/onnx/model.js';
import { foldBatchNorms } from '../src/onnx/fold-batchnorm.js';
import { pruneUnreachable } from '../src/onnx/prune.js';
import { type CalibrationBatch, quantizeModel } from '../src/onnx/quantize.js';
import { fixture, needsFixtures } from './support/fixtures.js';
import { seededTensors } from './support/seeded-tensors.js';
import { tempDir } from './support/tmp.js';

const { randoms, floats } = seededTensors(15);
const SIDE = 16;
const IMAGE = { name: 'image', type: 'float32' as const, dims: ['N', 3, SIDE, SIDE] };

const positive = (name: string, n: number): TensorInit => ({ name, type: 'float32', dims: [n], data: randoms(n).map((v) => 0.5 + Math.abs(v)) });
const conv = (name: string, input: string, output: string, weight: string, bias?: string, pads = 1): NodeSpec => ({
  op: 'Conv',
  name,
  inputs: bias ? [input, weight, bias] : [input, weight],
  outputs: [output],
  attrs: { pads: attr.ints([pads, pads, pads, pads]) },
});

/**
 * A residual block like ResNet's: Conv → BatchNormalization → Relu → MaxPool,
 * then Conv → Relu → Conv(1×1) added to the pooled map → Relu → GlobalAveragePool → Flatten.
 */
function residualSpec(opset = 13): ModelSpec {
  return {
    opset,
    nodes: [
      conv('stem', 'image', 'stem_out', 'stem.w', 'stem.b'),
      { op: 'BatchNormalization', name: 'bn', inputs: ['stem_out', 'bn.g', 'bn.b', 'bn.m', 'bn.v'], outputs: ['bn_out'], attrs: { epsilon: attr.float(1e-5) } },
      { op: 'Relu', name: 'stem_relu', inputs: ['bn_out'], outputs: ['stem_act'] },
      { op: 'MaxPool', name: 'pool', inputs: ['stem_act'], outputs: ['pooled'], attrs: { kernel_shape: attr.ints([2, 2]), strides: attr.ints([2, 2]) } },
      conv('a', 'pooled', 'a_out', 'a.w', 'a.b'),
      { op: 'Relu', name: 'a_relu', inputs: ['a_out'], outputs: ['a_act'] },
      conv('b', 'a_act', 'b_out', 'b.w', undefined, 0),
      { op: 'Add', name: 'residual', inputs: ['b_out', 'pooled'], outputs: ['sum'] },
      { op: 'Relu', name: 'sum_relu', inputs: ['sum'], outputs: ['block'] },
      { op: 'GlobalAveragePool', name: 'gap', inputs: ['block'], outputs: ['gap_out'] },
      { op: 'Flatten', name: 'flatten', inputs: ['gap_out'], outputs: ['features'], attrs: { axis: attr.int(1) } },
    ],
    inputs: [IMAGE],
    outputs: [{ name: 'features', type: 'float32', dims: ['N', 8] }],
    initializers: [
      floats('stem.w', [8, 3, 3, 3]), floats('stem.b', [8]),
      positive('bn.g', 8), floats('bn.b', [8]), floats('bn.m', [8]), positive('bn.v', 8),
      floats('a.w', [8, 8, 3, 3]), floats('a.b', [8]),
      floats('b.w', [8, 8, 1, 1]),
    ],
  };
}

function batch(n: number, scale = 1): CalibrationBatch {
  return { data: randoms(n * 3 * SIDE * SIDE).map((v) => v * scale), dims: [n, 3, SIDE, SIDE] };
}
const calibration = [batch(8), batch(8), batch(8)];
const heldOut = [batch(8)];

async function run(bytes: Uint8Array, input: CalibrationBatch): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(bytes);
  try {
    const name = session.inputNames[0]!;
    const out = await session.run({ [name]: new ort.Tensor('float32', input.data, input.dims) });
    return out[session.outputNames[0]!]!.data as Float32Array;
  } finally {
    await session.release();
  }
}

function cosine(a: Float32Array, b: Float32Array, rows: number): number[] {
  const w = a.length / rows;
  return Array.from({ length: rows }, (_, r) => {
    let dot = 0, na = 0, nb = 0;
    for (let k = r * w; k < (r + 1) * w; k++) {
      dot += a[k]! * b[k]!;
      na += a[k]! ** 2;
      nb += b[k]! ** 2;
    }
    return dot / Math.sqrt(na * nb);
  });
}

/** The operators onnxruntime's CPU optimizer turns a model into (what actually runs). */
async function optimizedOps(bytes: Uint8Array): Promise<Record<string, number>> {
  const dir = await tempDir();
  const file = path.join(dir, 'optimized.onnx');
  // Severity 3: onnxruntime warns that an 'all'-level optimized file is hardware-specific, which is the point here.
  const session = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'all', optimizedModelFilePath: file, logSeverityLevel: 3 });
  await session.release();
  const ops: Record<string, number> = {};
  for (const n of parseModel(await readFile(file)).graph.nodes) ops[n.opType] = (ops[n.opType] ?? 0) + 1;
  return ops;
}

const producerOf = (m: OnnxModel, tensor: string): OnnxNode | undefined => m.graph.nodes.find((n) => n.outputs.includes(tensor));
const initializer = (m: OnnxModel, name: string) => m.graph.initializers.find((t) => t.name === name);

test('BatchNormalization folds into the Conv before it, with the same outputs', async () => {
  const bytes = buildModel(residualSpec());
  const model = parseModel(bytes);
  assert.equal(foldBatchNorms(model.graph), 1);
  pruneUnreachable(model.graph);
  assert.equal(model.graph.nodes.some((n) => n.opType === 'BatchNormalization'), false);
  const stem = model.graph.nodes.find((n) => n.name === 'stem')!;
  assert.deepEqual(stem.outputs, ['bn_out']);
  assert.deepEqual(getAttribute(stem, 'pads')?.value, [1, 1, 1, 1], 'the Conv keeps its attributes');
  const [before, after] = [await run(bytes, heldOut[0]!), await run(encodeModel(model), heldOut[0]!)];
  const worst = before.reduce((m, v, i) => Math.max(m, Math.abs(v - after[i]!)), 0);
  assert.ok(worst < 1e-4, `folded model differs by ${worst}`);
});

test('BatchNormalization parameters shared through Identity nodes (as torch.onnx writes them) fold too', async () => {
  const spec = residualSpec();
  spec.nodes = spec.nodes.map((n) => (n.name === 'bn' ? { ...n, inputs: ['stem_out', 'g_alias', 'b_alias', 'm_alias', 'v_alias'] } : n));
  spec.nodes.unshift(
    ...['g', 'b', 'm', 'v'].map((k) => ({ op: 'Identity', name: `alias_${k}`, inputs: [`bn.${k}`], outputs: [`${k}_alias`] })),
  );
  const bytes = buildModel(spec);
  const model = parseModel(bytes);
  assert.equal(foldBatchNorms(model.graph), 1);
  pruneUnreachable(model.graph);
  assert.equal(model.graph.nodes.some((n) => n.opType === 'Identity' || n.opType === 'BatchNormalization'), false);
  const [before, after] = [await run(bytes, heldOut[0]!), await run(encodeModel(model), heldOut[0]!)];
  const worst = before.reduce((m, v, i) => Math.max(m, Math.abs(v - after[i]!)), 0);
  assert.ok(worst < 1e-4, `folded model differs by ${worst}`);
});

test('a residual block quantizes to int8 QDQ that onnxruntime runs as QLinearConv and QLinearAdd', async () => {
  const floatBytes = buildModel(residualSpec());
  const q = await quantizeModel(floatBytes, { source: 'block.onnx', calibration });
  assert.deepEqual(q.quantizedNodes, { Conv: 3, MaxPool: 1, Add: 1 });
  assert.equal(q.foldedBatchNorms, 1);
  assert.equal(q.foldedActivations, 3, 'the three Relu after Conv, Conv and Add');
  assert.equal(q.perChannel, true);
  assert.deepEqual(q.keptFloat, []);
  assert.ok(q.agreement.mean > 0.99 && q.agreement.images === 16, JSON.stringify(q.agreement));

  // onnxruntime: the features agree with float on images not used to calibrate...
  const [f, i8] = [await run(floatBytes, heldOut[0]!), await run(q.bytes, heldOut[0]!)];
  const cos = cosine(f, i8, 8);
  assert.ok(Math.min(...cos) > 0.99, `cosine per image ${cos.map((c) => c.toFixed(4)).join(' ')}`);
  // ...and its CPU optimizer fuses every group: no float Conv or Add is left to run.
  const ops = await optimizedOps(q.bytes);
  assert.equal(ops.QLinearConv, 3, JSON.stringify(ops));
  assert.equal(ops.QLinearAdd, 1, JSON.stringify(ops));
  assert.equal(ops.Conv ?? 0, 0, JSON.stringify(ops));
  assert.equal(ops.Add ?? 0, 0, JSON.stringify(ops));
});

test('the written file, read back by the reference decoder, holds int8 weights, per-channel scales and int32 biases', async () => {
  const floatBytes = buildModel(residualSpec());
  const floatModel = parseModel(floatBytes);
  const q = await quantizeModel(floatBytes, { calibration });
  const m = parseModel(q.bytes);
  assert.equal(defaultOpset(m), 13);
  assert.equal(m.graph.nodes.some((n) => ['Relu', 'BatchNormalization'].includes(n.opType)), false);
  const convs = m.graph.nodes.filter((n) => n.opType === 'Conv');
  assert.equal(convs.length, 3);
  for (const c of convs) {
    // The activation comes dequantized from uint8 with a scalar scale...
    const x = producerOf(m, c.inputs[0]!)!;
    assert.equal(x.opType, 'DequantizeLinear', `${c.name} input`);
    assert.equal(initializer(m, x.inputs[2]!)?.elemType, 'uint8');
    assert.deepEqual(initializer(m, x.inputs[1]!)?.dims, []);
    // ...the weights from int8, one scale per output channel along axis 0, zero point 0...
    const w = producerOf(m, c.inputs[1]!)!;
    assert.equal(w.opType, 'DequantizeLinear');
    const [wq, ws, wz] = w.inputs.map((n) => initializer(m, n)!);
    assert.equal(wq!.elemType, 'int8');
    assert.deepEqual(ws!.dims, [8]);
    assert.deepEqual(tensorValues(wz!), new Array(8).fill(0));
    assert.equal(getAttribute(w, 'axis')?.value, 0);
    // ...and the output goes straight to a QuantizeLinear: the group onnxruntime fuses.
    const next = m.graph.nodes.filter((n) => n.inputs.includes(c.outputs[0]!));
    assert.deepEqual(next.map((n) => n.opType), ['QuantizeLinear']);
  }
  // Dequantized weights are the float weights to within half a step.
  const a = convs.find((c) => c.name === 'a')!;
  const dq = producerOf(m, a.inputs[1]!)!;
  const [wq, ws] = [tensorValues(initializer(m, dq.inputs[0]!)!), tensorValues(initializer(m, dq.inputs[1]!)!)];
  const original = tensorValues(initializer(floatModel, 'a.w')!);
  original.forEach((v, k) => {
    const s = ws[Math.floor(k / 72)]!;
    assert.ok(Math.abs(wq[k]! * s - v) <= s / 2 + 1e-7, `weight ${k}: ${wq[k]}×${s} vs ${v}`);
  });
  assert.ok(Math.max(...wq.map(Math.abs)) === 127, 'the largest weight of a channel uses the full int8 range');
  // The bias is int32 at scale (input scale × weight scale), zero point 0.
  const bdq = producerOf(m, a.inputs[2]!)!;
  const [bq, bs] = [initializer(m, bdq.inputs[0]!)!, initializer(m, bdq.inputs[1]!)!];
  assert.equal(bq.elemType, 'int32');
  const inputScale = tensorValues(initializer(m, producerOf(m, a.inputs[0]!)!.inputs[1]!)!)[0]!;
  tensorValues(bs).forEach((s, c) => assert.ok(Math.abs(s - inputScale * ws[c]!) <= 1e-6 * s));
  const bias = tensorValues(initializer(floatModel, 'a.b')!);
  tensorValues(bq).forEach((v, c) => assert.equal(v, Math.round(bias[c]! / tensorValues(bs)[c]!)));
  // The MaxPool output shares its input's scale and zero point, so it runs on uint8.
  const poolQ = producerOf(m, producerOf(m, 'pooled')!.inputs[0]!)!;
  const pool = m.graph.nodes.find((n) => n.opType === 'MaxPool')!;
  const poolInput = producerOf(m, pool.inputs[0]!)!;
  assert.equal(poolQ.opType, 'QuantizeLinear');
  assert.equal(poolInput.opType, 'DequantizeLinear');
  assert.deepEqual(poolQ.inputs.slice(1), poolInput.inputs.slice(1));
});

test('an opset 11/12 graph of operators unchanged at 13 (Unsqueeze rewritten) is raised to 13 for per-channel weights; otherwise it stays per-tensor', async () => {
  const raised = await quantizeModel(buildModel(residualSpec(12)), { calibration });
  assert.equal(raised.opset, 13);
  assert.equal(raised.perChannel, true);

  // Unsqueeze took its axes as an attribute before 13: it is rewritten with an axes input.
  const withUnsqueeze = residualSpec(12);
  withUnsqueeze.nodes = [
    ...withUnsqueeze.nodes.slice(0, -1),
    { op: 'Flatten', name: 'flatten', inputs: ['gap_out'], outputs: ['flat'], attrs: { axis: attr.int(1) } },
    { op: 'Unsqueeze', name: 'unsqueeze', inputs: ['flat'], outputs: ['features3'], attrs: { axes: attr.ints([2]) } },
    { op: 'Flatten', name: 'flatten2', inputs: ['features3'], outputs: ['features'], attrs: { axis: attr.int(1) } },
  ];
  const unsqueezeBytes = buildModel(withUnsqueeze);
  const u = await quantizeModel(unsqueezeBytes, { calibration });
  assert.equal(u.opset, 13);
  assert.equal(u.perChannel, true);
  const um = parseModel(u.bytes);
  const unsqueeze = um.graph.nodes.find((n) => n.opType === 'Unsqueeze')!;
  assert.equal(getAttribute(unsqueeze, 'axes'), undefined);
  assert.deepEqual(tensorValues(initializer(um, unsqueeze.inputs[1]!)!), [2]);
  assert.ok(Math.min(...cosine(await run(unsqueezeBytes, heldOut[0]!), await run(u.bytes, heldOut[0]!), 8)) > 0.99);

  // Softmax changed meaning at opset 13: the opset stays 11, weights per tensor.
  const spec = residualSpec(11);
  spec.nodes = [
    ...spec.nodes.slice(0, -1),
    { op: 'Flatten', name: 'flatten', inputs: ['gap_out'], outputs: ['flat'], attrs: { axis: attr.int(1) } },
    { op: 'Softmax', name: 'softmax', inputs: ['flat'], outputs: ['features'], attrs: { axis: attr.int(1) } },
  ];
  const bytes = buildModel(spec);
  const q = await quantizeModel(bytes, { calibration });
  assert.equal(q.opset, 11);
  assert.equal(q.perChannel, false);
  const m = parseModel(q.bytes);
  for (const dq of m.graph.nodes.filter((n) => n.opType === 'DequantizeLinear' && initializer(m, n.inputs[0]!)?.elemType === 'int8')) {
    assert.deepEqual(initializer(m, dq.inputs[1]!)!.dims, [], 'one scale per weight tensor');
    assert.equal(getAttribute(dq, 'axis'), undefined);
  }
  const cos = cosine(await run(bytes, heldOut[0]!), await run(q.bytes, heldOut[0]!), 8);
  assert.ok(Math.min(...cos) > 0.98, cos.join(' '));
  assert.equal((await optimizedOps(q.bytes)).QLinearConv, 3);
});

test('Clip whose range holds 0 (ReLU6, [-1, 1]) folds into the quantization; one above 0 stays, and the model still agrees', async () => {
  const spec = residualSpec();
  const scalar = (name: string, v: number): TensorInit => ({ name, type: 'float32', dims: [], data: Float32Array.of(v) });
  spec.nodes = spec.nodes.map((n) =>
    n.name === 'stem_relu' ? { op: 'Clip', name: 'relu6', inputs: ['bn_out', 'zero', 'six'], outputs: ['stem_act'] } :
    n.name === 'a_relu' ? { op: 'Clip', name: 'clip11', inputs: ['a_out', 'minus1', 'one'], outputs: ['a_act'] } :
    n.name === 'sum_relu' ? { op: 'Clip', name: 'clip_above0', inputs: ['sum', 'quarter', 'one'], outputs: ['block'] } : n,
  );
  // ReLU6's bounds from Constant nodes, as torch.onnx writes them; the other Clip's from initializers.
  spec.nodes.unshift(
    { op: 'Constant', name: 'c0', inputs: [], outputs: ['zero'], attrs: { value: attr.tensor(scalar('', 0)) } },
    { op: 'Constant', name: 'c6', inputs: [], outputs: ['six'], attrs: { value: attr.tensor(scalar('', 6)) } },
  );
  spec.initializers!.push(scalar('minus1', -1), scalar('one', 1), scalar('quarter', 0.25));
  const bytes = buildModel(spec);
  const q = await quantizeModel(bytes, { calibration });
  assert.equal(q.foldedActivations, 2, 'relu6 and clip11');
  // Clip(0.25, 1) cannot be a quantization's saturation (whose range always holds 0): it stays, in float.
  const clips = parseModel(q.bytes).graph.nodes.filter((n) => n.opType === 'Clip').map((n) => n.name);
  assert.deepEqual(clips, ['clip_above0']);
  const cos = cosine(await run(bytes, heldOut[0]!), await run(q.bytes, heldOut[0]!), 8);
  assert.ok(Math.min(...cos) > 0.99, cos.join(' '));
});

test('MatMul with constant weights becomes QLinearMatMul; shared and Identity-forwarded weights are handled', async () => {
  const spec: ModelSpec = {
    opset: 13,
    nodes: [
      { op: 'Flatten', name: 'flat', inputs: ['image'], outputs: ['x'], attrs: { axis: attr.int(1) } },
      { op: 'MatMul', name: 'mm1', inputs: ['x', 'w1'], outputs: ['h'] },
      { op: 'Relu', name: 'relu', inputs: ['h'], outputs: ['h_act'] },
      { op: 'Identity', name: 'alias', inputs: ['w2'], outputs: ['w2_alias'] },
      { op: 'MatMul', name: 'mm2', inputs: ['h_act', 'w2_alias'], outputs: ['h2'] },
      { op: 'Relu', name: 'relu2', inputs: ['h2'], outputs: ['h2_act'] },
      { op: 'MatMul', name: 'mm3', inputs: ['h2_act', 'w2'], outputs: ['features'] },
    ],
    inputs: [IMAGE],
    outputs: [{ name: 'features', type: 'float32', dims: ['N', 32] }],
    initializers: [floats('w1', [3 * SIDE * SIDE, 32]), floats('w2', [32, 32])],
  };
  const bytes = buildModel(spec);
  const q = await quantizeModel(bytes, { calibration });
  assert.deepEqual(q.quantizedNodes, { MatMul: 3 });
  const ops = await optimizedOps(q.bytes);
  assert.ok((ops.QLinearMatMul ?? 0) >= 2, JSON.stringify(ops));
  const cos = cosine(await run(bytes, heldOut[0]!), await run(q.bytes, heldOut[0]!), 8);
  assert.ok(Math.min(...cos) > 0.98, cos.join(' '));
});

test('graphs it cannot quantize are refused with a message that says why and what to do', async () => {
  const refused = (bytes: Uint8Array, message: string, cal: CalibrationBatch[] = calibration) =>
    assert.rejects(quantizeModel(bytes, { source: 'm.onnx', calibration: cal }), (e: Error) => {
      assert.equal(e.message, message);
      return true;
    });
  const q = await quantizeModel(buildModel(residualSpec()), { calibration });
  await refused(
    q.bytes,
    'cannot quantize m.onnx: it is already quantized (17 nodes such as QuantizeLinear "image_dequantized_QuantizeLinear"). Use it as it is, without the quantize stage.',
  );
  await refused(
    buildModel(residualSpec(9)),
    'cannot quantize m.onnx: it uses ONNX opset 9; QuantizeLinear and DequantizeLinear need opset 10. Convert it to opset 13 first (onnx.version_converter.convert_version(model, 13)).',
  );
  const twoInputs = residualSpec();
  twoInputs.inputs = [IMAGE, { name: 'extra', type: 'float32', dims: ['N', 8] }];
  twoInputs.nodes.push({ op: 'Add', name: 'plus', inputs: ['features', 'extra'], outputs: ['features2'] });
  twoInputs.outputs = [{ name: 'features2', type: 'float32', dims: ['N', 8] }];
  await refused(buildModel(twoInputs), 'cannot quantize m.onnx: it takes 2 inputs; the quantizer calibrates a model with one image input. Use a single-input image model.');
  const noWeights: ModelSpec = {
    opset: 13,
    nodes: [
      { op: 'Relu', name: 'relu', inputs: ['image'], outputs: ['r'] },
      { op: 'GlobalAveragePool', name: 'gap', inputs: ['r'], outputs: ['features'] },
    ],
    inputs: [IMAGE],
    outputs: [{ name: 'features', type: 'float32', dims: ['N', 3, 1, 1] }],
  };
  await refused(buildModel(noWeights), 'cannot quantize m.onnx: it has no Conv or MatMul with constant float weights to quantize. Keep the float model.');
  const computedWeights = residualSpec();
  computedWeights.nodes.unshift({ op: 'Neg', name: 'neg', inputs: ['stem.w0'], outputs: ['stem.w'] });
  computedWeights.initializers = computedWeights.initializers!.map((t) => (t.name === 'stem.w' ? { ...t, name: 'stem.w0' } : t));
  const partly = await quantizeModel(buildModel(computedWeights), { calibration });
  assert.deepEqual(partly.keptFloat, [{ node: 'Conv "stem"', reason: 'its weights are computed, not constant' }]);

  const infinite = { data: new Float32Array(8 * 3 * SIDE * SIDE).fill(0.5), dims: [8, 3, SIDE, SIDE] };
  infinite.data[5] = Infinity;
  await refused(
    buildModel(residualSpec()),
    'calibrating m.onnx: tensor "image" took non-finite values (0.5..Infinity) on the sample images, which no int8 scale can represent; check the preprocessing, or keep the float model.',
    [infinite],
  );
  await refused(buildModel(residualSpec()), 'calibration needs at least one batch of sample images; none was given.', []);
});

test('a model whose int8 version disagrees with the float one is refused, not returned', async () => {
  // Calibrated on inputs a thousand times larger than the ones it is checked on:
  // every checked pixel rounds to the zero point, and the features are lost.
  const spec = residualSpec();
  spec.initializers = spec.initializers!.map((t) => (t.name.endsWith('.b') || t.name === 'bn.m' ? { ...t, data: new Float32Array(t.data.length) } : t));
  await assert.rejects(
    quantizeModel(buildModel(spec), { source: 'm.onnx', calibration: [batch(8, 1000)], check: heldOut }),
    /^OnnxModelError: cannot quantize m\.onnx: its int8 version agrees with the float model only at a mean cosine similarity of 0\.\d{4} on 8 sample images \(at least 0\.9 is required\)\. Keep the float model, or calibrate on more representative images\.$/,
  );
});

test('the MobileNetV2 int8 fixture is refused as already quantized', { skip: needsFixtures }, async () => {
  const bytes = await readFile(fixture('models', 'mobilenetv2-12-int8.onnx'));
  await assert.rejects(quantizeModel(bytes, { source: 'mobilenetv2-12-int8.onnx', calibration }), /already quantized/);
});
