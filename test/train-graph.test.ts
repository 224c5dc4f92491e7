// The ONNX training graph's hand-written back-propagation against central
// finite differences of its own loss, on the float64 build.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { buildTrainGraph, io, parameterNames } from '../src/train/graph.js';
import type { OptimizerConfig } from '../src/train/engine.js';
import { Prng } from '../src/train/prng.js';

interface Problem {
  widths: number[];
  batch: number;
  features: Float64Array;
  labels: BigInt64Array;
  classWeights: Float64Array;
  masks: Float64Array[];
  params: Map<string, { data: Float64Array; dims: number[] }>;
}

function randomProblem(widths: number[], batch: number, dropout: number, seed: number): Problem {
  const rng = new Prng(seed);
  const F = widths[0]!;
  const C = widths[widths.length - 1]!;
  const features = Float64Array.from({ length: batch * F }, () => rng.uniform() * 2 - 1);
  const labels = BigInt64Array.from({ length: batch }, (_, i) => BigInt(i % C));
  const classWeights = Float64Array.from({ length: C }, (_, c) => 0.5 + c * 0.75);
  const masks = widths.slice(1, -1).map((h) =>
    Float64Array.from({ length: batch * h }, () => (rng.uniform() < dropout ? 0 : 1 / (1 - dropout))),
  );
  const params = new Map<string, { data: Float64Array; dims: number[] }>();
  for (let l = 0; l + 1 < widths.length; l++) {
    const [inF, outF] = [widths[l]!, widths[l + 1]!];
    params.set(io.weight(l), { data: Float64Array.from({ length: outF * inF }, () => rng.uniform() - 0.5), dims: [outF, inF] });
    params.set(io.bias(l), { data: Float64Array.from({ length: outF }, () => rng.uniform() - 0.5), dims: [outF] });
  }
  return { widths, batch, features, labels, classWeights, masks, params };
}

// Plain SGD with lr 0 leaves the parameters alone and needs no state, so a run is just loss + gradients.
const sgd = (weightDecay: number): OptimizerConfig => ({
  optimizer: 'sgd', betas: [0.9, 0.999], eps: 1e-8, momentum: 0, dampening: 0, nesterov: false, weightDecay,
});

async function gradientCheck(widths: number[], dropout: number, weightDecay: number): Promise<void> {
  const p = randomProblem(widths, 5, dropout, widths.length * 7 + widths[0]!);
  const graph = buildTrainGraph({ widths, dtype: 'float64', optimizer: sgd(weightDecay), dropout: dropout > 0, exposeGradients: true });
  const session = await ort.InferenceSession.create(graph.model);
  const names = parameterNames(widths.length - 1);
  const run = async () => {
    const feeds: Record<string, ort.Tensor> = {
      [io.features]: new ort.Tensor('float64', p.features, [p.batch, widths[0]!]),
      [io.labels]: new ort.Tensor('int64', p.labels, [p.batch]),
      [io.classWeights]: new ort.Tensor('float64', p.classWeights, [p.classWeights.length]),
      [io.lr]: new ort.Tensor('float64', Float64Array.of(0), []),
    };
    p.masks.forEach((m, l) => (feeds[io.dropoutMask(l)] = new ort.Tensor('float64', m, [p.batch, widths[l + 1]!])));
    for (const [name, v] of p.params) feeds[name] = new ort.Tensor('float64', v.data, v.dims);
    return session.run(feeds);
  };
  // The gradient output includes the L2 term, i.e. it is the gradient of loss + wd/2·Σp².
  const objective = async () => {
    const out = await run();
    let penalty = 0;
    for (const v of p.params.values()) for (const x of v.data) penalty += x * x;
    return Number(out[io.loss]!.data[0]) + (weightDecay / 2) * penalty;
  };
  const analytic = await run();
  // Central differences in float64: step 1e-5 balances truncation (~h²) against rounding (~1e-16/h);
  // the graph's gradients agree to ~1e-8 relative (denominator floored at 1e-3 for tiny gradients).
  const h = 1e-5;
  for (const name of names) {
    const param = p.params.get(name)!.data;
    const grad = analytic[io.grad(name)]!.data as Float64Array;
    for (let j = 0; j < param.length; j++) {
      const saved = param[j]!;
      param[j] = saved + h;
      const up = await objective();
      param[j] = saved - h;
      const down = await objective();
      param[j] = saved;
      const numeric = (up - down) / (2 * h);
      const error = Math.abs(numeric - grad[j]!) / Math.max(1e-3, Math.abs(numeric));
      assert.ok(error < 1e-7, `${name}[${j}]: graph ${grad[j]} vs finite difference ${numeric}`);
    }
  }
  await session.release();
}

test('linear head gradients match finite differences (class weights, weight decay)', async () => {
  await gradientCheck([4, 3], 0, 0.05);
});

test('two-class linear head gradients match finite differences', async () => {
  await gradientCheck([5, 2], 0, 0);
});

test('MLP head gradients match finite differences (ReLU, dropout masks, class weights, weight decay)', async () => {
  await gradientCheck([4, 6, 5, 3], 0.3, 0.02);
});

test('the training graph uses only standard ONNX operators', () => {
  const graph = buildTrainGraph({ widths: [8, 4, 3], dtype: 'float32', optimizer: { ...sgd(0.1), optimizer: 'adamw' }, dropout: true });
  const text = new TextDecoder('latin1').decode(graph.model);
  assert.ok(!text.includes('com.microsoft'), 'no contrib-domain operators');
  assert.deepEqual(
    graph.outputs.map((o) => o.name),
    [
      'layer0.weight.next', 'layer0.bias.next', 'layer1.weight.next', 'layer1.bias.next',
      'layer0.weight.moment1.next', 'layer0.weight.moment2.next', 'layer0.bias.moment1.next', 'layer0.bias.moment2.next',
      'layer1.weight.moment1.next', 'layer1.weight.moment2.next', 'layer1.bias.moment1.next', 'layer1.bias.moment2.next',
      'loss', 'correct',
    ],
  );
});
