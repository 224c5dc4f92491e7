// Calibration (src/onnx/calibrate.ts): the ranges the in-graph ReduceMin /
// ReduceMax outputs give are checked against the tensors themselves, taken
// from onnxruntime as plain outputs and scanned here; the float outputs the
// same session gives for the check are those of the model as given.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { attr, buildModel, type ModelSpec } from '../src/onnx/builder.js';
import { type CalibrationBatch, Calibrator, calibrateRanges } from '../src/onnx/calibrate.js';
import { parseModel, parseValueInfo } from '../src/onnx/model.js';
import { pb } from '../src/onnx/protobuf.js';
import { spinningAlone } from '../src/features/threads.js';
import { seededTensors } from './support/seeded-tensors.js';

const { randoms, floats } = seededTensors(27);
const SIDE = 8;

function spec(opset: number): ModelSpec {
  return {
    opset,
    nodes: [
      { op: 'Conv', name: 'c1', inputs: ['image', 'w1', 'b1'], outputs: ['c1_out'], attrs: { pads: attr.ints([1, 1, 1, 1]) } },
      { op: 'Relu', name: 'r1', inputs: ['c1_out'], outputs: ['r1_out'] },
      { op: 'Conv', name: 'c2', inputs: ['r1_out', 'w2'], outputs: ['c2_out'] },
      { op: 'Add', name: 'add', inputs: ['c2_out', 'c1_out'], outputs: ['sum'] },
      { op: 'GlobalAveragePool', name: 'gap', inputs: ['sum'], outputs: ['gap_out'] },
      { op: 'Flatten', name: 'flatten', inputs: ['gap_out'], outputs: ['features'], attrs: { axis: attr.int(1) } },
    ],
    inputs: [{ name: 'image', type: 'float32', dims: ['N', 3, SIDE, SIDE] }],
    outputs: [{ name: 'features', type: 'float32', dims: ['N', 4] }],
    initializers: [floats('w1', [4, 3, 3, 3]), floats('b1', [4]), floats('w2', [4, 4, 1, 1])],
  };
}
const PROBED = ['image', 'c1_out', 'r1_out', 'c2_out', 'sum'];
const batch = (n: number, scale: number): CalibrationBatch => ({ data: randoms(n * 3 * SIDE * SIDE).map((v) => v * scale), dims: [n, 3, SIDE, SIDE] });

/** The probed tensors as plain outputs, scanned in JavaScript: the reference the reductions must match. */
async function scannedRanges(bytes: Uint8Array, batches: CalibrationBatch[]): Promise<Map<string, { min: number; max: number }>> {
  const model = parseModel(bytes);
  const float = (name: string) => parseValueInfo([pb.string(1, name), pb.message(2, [pb.message(1, [pb.varint(1, 1)])])]);
  model.graph.outputs = [...model.graph.outputs, ...PROBED.filter((t) => t !== 'image').map(float)];
  const { encodeModel } = await import('../src/onnx/model.js');
  // The same thread count as the calibration below, so the tensors are the same bits.
  const session = await ort.InferenceSession.create(encodeModel(model), { intraOpNumThreads: 1 });
  const ranges = new Map<string, { min: number; max: number }>();
  try {
    for (const b of batches) {
      const out = await session.run({ image: new ort.Tensor('float32', b.data, b.dims) });
      for (const name of PROBED) {
        const values = name === 'image' ? b.data : (out[name]!.data as Float32Array);
        const r = ranges.get(name) ?? { min: Infinity, max: -Infinity };
        for (const v of values) {
          r.min = Math.min(r.min, v);
          r.max = Math.max(r.max, v);
        }
        ranges.set(name, r);
      }
    }
  } finally {
    await session.release();
  }
  return ranges;
}

for (const opset of [11, 13, 18]) {
  test(`the in-graph reductions give each tensor's exact range over all batches (opset ${opset})`, async () => {
    const bytes = buildModel(spec(opset));
    // Batches of different scales and sizes: the later ones must widen the earlier ranges.
    const batches = [batch(2, 1), batch(3, 4), batch(1, 0.5)];
    const got = await calibrateRanges(parseModel(bytes, 'm.onnx'), PROBED, batches, { intraOpThreads: 1, spinning: spinningAlone() });
    const want = await scannedRanges(bytes, batches);
    assert.deepEqual([...got.keys()].sort(), [...PROBED].sort());
    for (const name of PROBED) {
      const [g, w] = [got.get(name)!, want.get(name)!];
      assert.ok(w.min < 0 || name === 'r1_out', `${name} should take negative values in this test`);
      // A Relu's minimum is set to 0, not measured: it is 0 here, where some values were clipped.
      assert.equal(g.min, w.min, `${name} min`);
      assert.equal(g.max, w.max, `${name} max`);
    }
  });
}

test("a Relu's output of rank 3 or more gets 0 as its lower bound, the bound quantization uses, and its exact maximum", async () => {
  const bytes = buildModel({
    opset: 13,
    nodes: [
      { op: 'Relu', name: 'relu', inputs: ['image'], outputs: ['r'] },
      { op: 'Conv', name: 'c', inputs: ['r', 'w'], outputs: ['features'] },
    ],
    inputs: [{ name: 'image', type: 'float32', dims: ['N', 3, SIDE, SIDE] }],
    outputs: [{ name: 'features', type: 'float32', dims: ['N', 2, SIDE, SIDE] }],
    initializers: [floats('w', [2, 3, 1, 1])],
  });
  // Every input at least 1: the Relu clips nothing, its true minimum is at least 1.
  const positive = { data: randoms(2 * 3 * SIDE * SIDE).map((v) => 1 + Math.abs(v) / 2), dims: [2, 3, SIDE, SIDE] };
  const ranges = await calibrateRanges(parseModel(bytes, 'm.onnx'), ['r'], [positive]);
  assert.equal(ranges.get('r')!.min, 0);
  assert.equal(ranges.get('r')!.max, Math.max(...positive.data));
});

test("a Relu's output of rank 2 (no spatial axes to pool) is reduced whole: its exact minimum", async () => {
  const bytes = buildModel({
    opset: 13,
    nodes: [
      { op: 'Relu', name: 'relu', inputs: ['x'], outputs: ['r'] },
      { op: 'MatMul', name: 'mm', inputs: ['r', 'w'], outputs: ['features'] },
    ],
    inputs: [{ name: 'x', type: 'float32', dims: ['N', 6] }],
    outputs: [{ name: 'features', type: 'float32', dims: ['N', 2] }],
    initializers: [floats('w', [6, 2])],
  });
  const positive = { data: randoms(4 * 6).map((v) => 1 + Math.abs(v) / 2), dims: [4, 6] };
  const ranges = await calibrateRanges(parseModel(bytes, 'm.onnx'), ['r'], [positive]);
  assert.equal(ranges.get('r')!.min, Math.min(...positive.data));
  assert.equal(ranges.get('r')!.max, Math.max(...positive.data));
});

test("the calibration session gives the given model's own outputs, and the check batches do not move the ranges", async () => {
  const bytes = buildModel(spec(13));
  const calibrator = await Calibrator.open(parseModel(bytes, 'm.onnx'), PROBED);
  try {
    await calibrator.add(batch(2, 1));
    const before = calibrator.ranges();
    const check = batch(2, 100);
    const out = await calibrator.outputs(check);
    assert.deepEqual(Object.keys(out), ['features'], 'only the model outputs, not the reductions');
    const session = await ort.InferenceSession.create(bytes);
    try {
      const plain = await session.run({ image: new ort.Tensor('float32', check.data, check.dims) });
      // The same graph; only the thread settings differ, so sums may round differently.
      const [a, b] = [out.features!.data as Float32Array, plain.features!.data as Float32Array];
      assert.equal(a.length, b.length);
      a.forEach((v, i) => assert.ok(Math.abs(v - b[i]!) <= 1e-5 * Math.max(1, Math.abs(b[i]!)), `feature ${i}: ${v} against ${b[i]}`));
    } finally {
      await session.release();
    }
    assert.deepEqual(calibrator.ranges(), before);
  } finally {
    await calibrator.release();
  }
});

test('an intermediate tensor that overflows to infinity is named, with what to do', async () => {
  // Finite inputs of 1e38 overflow float32 in the first Conv.
  const huge = { data: new Float32Array(3 * SIDE * SIDE).fill(1e38), dims: [1, 3, SIDE, SIDE] };
  await assert.rejects(calibrateRanges(parseModel(buildModel(spec(13)), 'm.onnx'), PROBED, [huge]), (e: Error) => {
    assert.match(e.message, /^calibrating m\.onnx: tensor "(c1_out|r1_out|c2_out|sum)" took non-finite values \(.*\) on the sample images, which no int8 scale can represent; check the preprocessing, or keep the float model\.$/);
    return true;
  });
});

test('spinning for a session alone: on unless the machine runs more than 2 threads per core', () => {
  assert.equal(spinningAlone(0.5, 2), true);
  assert.equal(spinningAlone(4, 2), true);
  assert.equal(spinningAlone(4.1, 2), false);
  assert.equal(spinningAlone(30, 16), true);
});
