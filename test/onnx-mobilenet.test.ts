// The real int8 MobileNetV2 (QLinear operators, uint8 pooled features): cut it
// into a feature extractor and merge a head back, checked against values
// computed independently from the original model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import * as ort from 'onnxruntime-node';
import { encodeModel, makeValueInfo, parseModel, tensorValues } from '../src/onnx/model.js';
import { cutAtFeatures } from '../src/onnx/cut.js';
import { mergeBackboneAndHead, readLabels } from '../src/onnx/merge.js';
import { fixture, needsFixtures } from './support/fixtures.js';

const MODEL = fixture('models', 'mobilenetv2-12-int8.onnx');
// Names in the fixture's graph: the pooled uint8 map and its quantization parameters.
const POOLED = '464_quantized';
const HEAD_NODES = ['Gemm_104_MatMul_quant', 'Gemm_104_Add_quant', 'output_DequantizeLinear'];
const BATCH = 2;

let seed = 3;
function randoms(n: number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return ((seed / 2 ** 31) * 2 - 1) * scale;
  });
}

async function run(bytes: Uint8Array, input: ort.Tensor): Promise<Record<string, ort.Tensor>> {
  const session = await ort.InferenceSession.create(bytes);
  try {
    return await session.run({ input });
  } finally {
    await session.release();
  }
}

test('int8 MobileNetV2: cut, features, pruning and a merged head', { skip: needsFixtures }, async (t) => {
  const original = new Uint8Array(await readFile(MODEL));
  const cut = await cutAtFeatures(original, { source: 'mobilenetv2-12-int8.onnx' });
  const input = new ort.Tensor('float32', randoms(BATCH * 3 * 224 * 224, 2), [BATCH, 3, 224, 224]);
  const { features } = await run(cut.bytes, input);

  await t.test('the cut is before the classifier, with 1280 float features per image', () => {
    assert.equal(
      cut.cutAfter,
      'tensor "472_quantized" (output of Reshape "Reshape_103"), before the classifier QLinearMatMul "Gemm_104_MatMul_quant"',
    );
    assert.equal(cut.featureName, 'features');
    assert.equal(cut.featureWidth, 1280);
    assert.deepEqual(features!.dims, [BATCH, 1280]);
    assert.equal(features!.type, 'float32');
    const model = parseModel(cut.bytes);
    assert.deepEqual(model.graph.outputs.map((o) => [o.name, o.elemType, o.dims]), [['features', 'float32', ['batch_size', 1280]]]);
    assert.deepEqual(model.opsetImports, parseModel(original).opsetImports);
  });

  await t.test('the head nodes and weights are gone, and only they', () => {
    const model = parseModel(cut.bytes);
    const names = new Set(model.graph.nodes.map((n) => n.name));
    assert.equal(cut.removedNodes, 3);
    for (const head of HEAD_NODES) assert.ok(!names.has(head), `${head} is still there`);
    assert.equal(model.graph.nodes.length, 73 - 3 + 1);
    assert.deepEqual(model.graph.nodes.at(-1)!.opType, 'DequantizeLinear');
    const initializers = new Set(model.graph.initializers.map((i) => i.name));
    for (const weight of ['classifier.1.weight_quantized', 'classifier.1.bias_quantized', 'output_scale']) {
      assert.ok(!initializers.has(weight), `${weight} is still there`);
    }
    assert.ok(initializers.has('464_scale') && initializers.has('464_zero_point'));
  });

  await t.test('the features are the dequantized pooled uint8 map of the original model', async () => {
    const withPooled = parseModel(original);
    withPooled.graph.outputs.push(makeValueInfo({ name: POOLED, type: 'uint8', dims: ['batch_size', 1280, 1, 1] }));
    const { [POOLED]: pooled } = await run(encodeModel(withPooled), input);
    const initializer = (name: string) => tensorValues(withPooled.graph.initializers.find((i) => i.name === name)!);
    const [scale] = initializer('464_scale');
    const [zeroPoint] = initializer('464_zero_point');
    const got = features!.data as Float32Array;
    const q = pooled!.data as Uint8Array;
    assert.equal(q.length, got.length);
    let nonZero = 0;
    for (let i = 0; i < q.length; i++) {
      const expected = Math.fround((q[i]! - zeroPoint!) * scale!);
      assert.ok(Math.abs(got[i]! - expected) <= 1e-6, `feature ${i}: ${got[i]} vs ${expected}`);
      if (expected !== 0) nonZero++;
    }
    assert.ok(nonZero > q.length / 10, 'the features should not be mostly zero');
  });

  await t.test('merged with a random head, the probabilities are softmax(W·features + b)', async () => {
    const classes = 3;
    const weight = randoms(classes * 1280, 0.05);
    const bias = randoms(classes);
    const labels = ['cat', 'dog', 'other'];
    const merged = mergeBackboneAndHead(cut.bytes, { layers: [{ weight, bias, inFeatures: 1280, outFeatures: classes }] }, { labels });
    assert.deepEqual(readLabels(parseModel(merged)), labels);
    const { probabilities } = await run(merged, input);
    assert.deepEqual(probabilities!.dims, [BATCH, classes]);
    const f = features!.data as Float32Array;
    for (let n = 0; n < BATCH; n++) {
      const logits = Array.from({ length: classes }, (_, c) => {
        let sum = bias[c]!;
        for (let j = 0; j < 1280; j++) sum += weight[c * 1280 + j]! * f[n * 1280 + j]!;
        return sum;
      });
      const max = Math.max(...logits);
      const exps = logits.map((z) => Math.exp(z - max));
      const total = exps.reduce((a, b) => a + b, 0);
      exps.forEach((e, c) => {
        const p = (probabilities!.data as Float32Array)[n * classes + c]!;
        assert.ok(Math.abs(p - e / total) < 1e-6, `image ${n} class ${c}: ${p} vs ${e / total}`);
      });
    }
  });
});
